# nbpipe: team-astro for linux/amd64
# digest: sha256:e09663900a79af5a81fce3dc373fe068990268e7b4048a08d87aac655fced14f
FROM localhost/nbpipe/jupyter:cf5a50251a360f97
USER 1000:0
RUN --mount=type=cache,id=nbpipe-pip,target=/var/cache/nbpipe/pip,sharing=locked,uid=1000,gid=0 ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nexport PIP_CACHE_DIR=/var/cache/nbpipe/pip\nexport PIP_DISABLE_PIP_VERSION_CHECK=1\nexport UV_CACHE_DIR=/var/cache/nbpipe/pip/uv\nexport UV_NO_CONFIG=1\nexport UV_NO_PROGRESS=1\nexport UV_PYTHON_DOWNLOADS=never\nset -eu\necho 'uv==0.13.9 --hash=sha256:d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19 --hash=sha256:ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375 --hash=sha256:5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe' > /tmp/nbpipe-uv.txt\nn=0\nwhile [ ! -d /var/cache/nbpipe/pip/prefetched/uv-0.13.9 ] && [ -n \"$(find /var/cache/nbpipe/pip/prefetched/uv-0.13.9.pending -mmin -1 2>/dev/null)\" ] && [ $n -lt 1800 ]; do\n  sleep 1; n=$((n+1))\ndone\nuv_from=\"\"\nif [ -d /var/cache/nbpipe/pip/prefetched/uv-0.13.9 ]; then uv_from=\"--no-index --find-links /var/cache/nbpipe/pip/prefetched/uv-0.13.9\"; fi\n/opt/venv/bin/python -m pip install --no-input --progress-bar off --quiet --no-deps --require-hashes --target /tmp/nbpipe-uv -r /tmp/nbpipe-uv.txt $uv_from\nrm -f /tmp/nbpipe-uv.txt\nmkdir /tmp/nbpipe-uv/tmp\nTMPDIR=/tmp/nbpipe-uv/tmp /tmp/nbpipe-uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode --link-mode copy astropy==8.0.2\nrm -rf /tmp/nbpipe-uv"]
USER 1000
ENV ASTRO_DATA="/home/jovyan/data"
COPY --chown=0:0 --chmod=0644 ["files/586184899ffe35ecd604bdf2163eebdda54b41848eea1fc6afefe36a57b8b3e9", "/etc/team-astro/README"]
COPY --chown=0:0 --chmod=0755 ["files/09732289aba23e18024819a182dfc96618400de5b7b39dfea3f33f4570fdd7d8", "/etc/cont-init.d/50-astro-data"]
LABEL "org.example.team"="astro"
LABEL "io.nbpipe.probe.imports"="jupyterlab,notebook,ipykernel,astropy,astropy.units"
LABEL "io.nbpipe.probe.commands"="[\"python3 -c \\\"import astropy.units as u; assert (1 * u.km).to(u.m).value == 1000\\\"\", \"test -d \\\"\$ASTRO_DATA\\\"\"]"
LABEL "io.nbpipe.image"="team-astro"
LABEL "io.nbpipe.digest"="sha256:e09663900a79af5a81fce3dc373fe068990268e7b4048a08d87aac655fced14f"
LABEL "org.opencontainers.image.version"="sha-7622581433c08b88"
# file files/09732289aba23e18024819a182dfc96618400de5b7b39dfea3f33f4570fdd7d8: 33 bytes
# file files/586184899ffe35ecd604bdf2163eebdda54b41848eea1fc6afefe36a57b8b3e9: 69 bytes

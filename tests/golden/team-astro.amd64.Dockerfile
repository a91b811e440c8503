# nbpipe: team-astro for linux/amd64
# digest: sha256:fa38aeaa89b1f0252c744d477f1331bfb46f0d43d7f3b9b9ad1fdd513517d6d0
FROM localhost/nbpipe/jupyter:eb3bd672c7cc55eb
USER 1000:0
RUN --mount=type=cache,id=nbpipe-pip,target=/var/cache/nbpipe/pip,sharing=locked,uid=1000,gid=0 ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nexport PIP_CACHE_DIR=/var/cache/nbpipe/pip\nexport PIP_DISABLE_PIP_VERSION_CHECK=1\nset -eu\n/opt/venv/bin/python -m pip install --no-input --progress-bar off astropy==8.0.2"]
USER 1000
ENV ASTRO_DATA="/home/jovyan/data"
COPY --chown=0:0 --chmod=0644 ["files/586184899ffe35ecd604bdf2163eebdda54b41848eea1fc6afefe36a57b8b3e9", "/etc/team-astro/README"]
COPY --chown=0:0 --chmod=0755 ["files/09732289aba23e18024819a182dfc96618400de5b7b39dfea3f33f4570fdd7d8", "/etc/cont-init.d/50-astro-data"]
LABEL "org.example.team"="astro"
LABEL "io.nbpipe.probe.imports"="jupyterlab,notebook,ipykernel,astropy,astropy.units"
LABEL "io.nbpipe.probe.commands"="[\"python3 -c \\\"import astropy.units as u; assert (1 * u.km).to(u.m).value == 1000\\\"\", \"test -d \\\"\$ASTRO_DATA\\\"\"]"
LABEL "io.nbpipe.image"="team-astro"
LABEL "io.nbpipe.digest"="sha256:fa38aeaa89b1f0252c744d477f1331bfb46f0d43d7f3b9b9ad1fdd513517d6d0"
LABEL "org.opencontainers.image.version"="sha-ddf39fea933c101a"
# file files/09732289aba23e18024819a182dfc96618400de5b7b39dfea3f33f4570fdd7d8: 33 bytes
# file files/586184899ffe35ecd604bdf2163eebdda54b41848eea1fc6afefe36a57b8b3e9: 69 bytes

# nbpipe: base for linux/amd64
# digest: sha256:d59697baa265095c271682ad222c80444698515f348ae3688a8fe591fdef51d4
FROM docker.io/library/debian:bookworm-slim@sha256:f3034a6ec3c1205360777c4aae76234998866ad18806ae62b63a3f84ccad782b
ENV LANG="C.UTF-8"
ENV LC_ALL="C.UTF-8"
ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV SHELL="/bin/bash"
COPY --chown=0:0 --chmod=0644 ["files/0f63feac3424cddf4d79676d9a4e183de284ed05beb6d3d43ee6016a49d97d7c", "/etc/dpkg/dpkg.cfg.d/nbpipe-slim"]
RUN ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nset -eu\nrm -f /etc/apt/apt.conf.d/docker-clean"]
RUN --mount=type=cache,id=nbpipe-apt-archives,target=/var/cache/apt/archives,sharing=locked,uid=0,gid=0 ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nset -eu\napt-get update -q\nDEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o APT::Keep-Downloaded-Packages=true 'ca-certificates=20250419~deb12u2' curl=7.88.1-10+deb12u15 git-man=1:2.39.5-0+deb12u3 git=1:2.39.5-0+deb12u3 libbrotli1=1.0.9-2+deb12u1 libcurl3-gnutls=7.88.1-10+deb12u15 libcurl4=7.88.1-10+deb12u15 liberror-perl=0.17029-2 libexecline2.9=2.9.3.0-1 libexpat1=2.5.0-1+deb12u5 libgdbm-compat4=1.23-3 libgdbm6=1.23-3 libgssapi-krb5-2=1.20.1-2+deb12u5 libk5crypto3=1.20.1-2+deb12u5 libkeyutils1=1.6.3-2 libkrb5-3=1.20.1-2+deb12u5 libkrb5support0=1.20.1-2+deb12u5 libldap-2.5-0=2.5.13+dfsg-5 libncursesw6=6.4-4 libnghttp2-14=1.52.0-1+deb12u3 libperl5.36=5.36.0-7+deb12u4 libproc2-0=2:4.0.2-3 libpsl5=0.21.2-1 librtmp1=2.4+20151223.gitfa8646d.1-2+b2 libs6-2.11=2.11.3.2-1 libsasl2-2=2.1.28+dfsg-10+deb12u1 libsasl2-modules-db=2.1.28+dfsg-10+deb12u1 libskarnet2.13=2.13.1.1-1 libssh2-1=1.10.0-3+deb12u1 'libssl3=3.0.22-1~deb12u2' 'openssl=3.0.22-1~deb12u2' perl-base=5.36.0-7+deb12u4 perl-modules-5.36=5.36.0-7+deb12u4 perl=5.36.0-7+deb12u4 procps=2:4.0.2-3 s6=2.11.3.2-1 tzdata=2026f-0+deb12u1\nrm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old"]
RUN ["/bin/sh", "-c", "export SOURCE_DATE_EPOCH=0\nexport PYTHONHASHSEED=0\nexport FORCE_SOURCE_DATE=1\nset -eu\n\nuseradd --no-create-home --no-user-group --uid 1000 --gid 0 \\\n  --groups 100 --home-dir /home/jovyan --shell /bin/bash jovyan\ninstall -d -o 1000 -g 100 -m 2775 /home/jovyan\ninstall -d -o 1000 -g 0 -m 2775 /etc/nbpipe/skel\ncp -a /etc/skel/. /etc/nbpipe/skel/\nchown -R 1000:0 /etc/nbpipe/skel\ninstall -d -m 0755 /etc/cont-init.d /etc/services.d\n"]
COPY --chown=0:0 --chmod=0755 ["files/66fd5bc4c93e8bfbf426fb6e064f0d79f200f3bffc8993cab9bb88a93af996ca", "/init"]
ENV NB_USER="jovyan"
ENV NB_UID="1000"
ENV NB_PREFIX="/"
ENV HOME="/home/jovyan"
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
ENTRYPOINT ["/init"]
CMD []
LABEL "org.opencontainers.image.source"="https://github.com/nbpipe/nbpipe"
LABEL "org.opencontainers.image.base.name"="docker.io/library/debian:bookworm-slim"
LABEL "io.nbpipe.image"="base"
LABEL "io.nbpipe.digest"="sha256:d59697baa265095c271682ad222c80444698515f348ae3688a8fe591fdef51d4"
LABEL "org.opencontainers.image.version"="sha-43d5f82f69172fe3"
# file files/0f63feac3424cddf4d79676d9a4e183de284ed05beb6d3d43ee6016a49d97d7c: 395 bytes
# file files/66fd5bc4c93e8bfbf426fb6e064f0d79f200f3bffc8993cab9bb88a93af996ca: 2069 bytes

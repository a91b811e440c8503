# The same content as base -> jupyter -> jupyter-scipy, written by hand as one Dockerfile
# (what a person would write without nbpipe), for the cold-build comparison in bench.py.
# ROOT is the local debootstrap'd root; the files come from images/files.
ARG ROOT
FROM ${ROOT}
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 SHELL=/bin/bash \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY images/files/dpkg-slim.cfg /etc/dpkg/dpkg.cfg.d/nbpipe-slim
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt,mode=0444 \
    set -eu; export SSL_CERT_FILE=/run/secrets/ca.crt PIP_CERT=/run/secrets/ca.crt; \
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      bash ca-certificates curl git procps s6 tzdata python3 python3-venv cm-super dvipng ffmpeg && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb && \
    useradd --no-create-home --no-user-group --uid 1000 --gid 0 --groups 100 --home-dir /home/jovyan --shell /bin/bash jovyan && \
    install -d -o 1000 -g 100 -m 2775 /home/jovyan && install -d -o 1000 -g 0 -m 2775 /etc/nbpipe/skel /opt/venv && \
    cp -a /etc/skel/. /etc/nbpipe/skel/ && install -d /etc/cont-init.d /etc/services.d && \
    runuser -u jovyan -- python3 -m venv /opt/venv && \
    runuser -u jovyan -- /opt/venv/bin/pip install --no-cache-dir \
      jupyterlab==4.5.11 notebook==7.5.8 jupyter-server==2.21.1 ipykernel==7.4.0 \
      bokeh==3.9.2 cloudpickle==3.1.3 dill==0.4.1 ipympl==0.10.0 matplotlib==3.11.2 numpy==2.4.6 \
      pandas==3.1.1 scikit-image==0.26.0 scikit-learn==1.9.1 scipy==1.17.1 seaborn==0.13.2 \
      kfp==2.17.3 kubeflow==0.5.0 jupyterlab-git==0.55.0 xgboost-cpu==3.2.0 \
      "dask[distributed]==2026.8.0" numba==0.68.1 h5py==3.16.0 statsmodels==0.15.0 sympy==1.14.0 \
      sqlalchemy==2.1.9 tables==3.11.1 beautifulsoup4==4.15.0 altair==6.3.0
COPY --chmod=0755 images/files/init /init
COPY images/files/jupyter_server_config.py /opt/venv/etc/jupyter/jupyter_server_config.py
COPY --chmod=0755 images/files/jupyterlab.run /etc/services.d/jupyterlab/run
ENV NB_USER=jovyan NB_UID=1000 NB_PREFIX=/ HOME=/home/jovyan VIRTUAL_ENV=/opt/venv
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
ENTRYPOINT ["/init"]

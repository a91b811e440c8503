"""The host side of the probes: starting a container (or Kubeflow's pod) and running
nbpipe.probes against it."""

"""The host side of the probes: starting a container (or Kubeflow's pod, or a Dagger
service) and running nbpipe.probes against it."""

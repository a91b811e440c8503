"""One run path: what each image is here (state), the scheduler, the pipeline that
builds, probes and publishes on any backend, and the report."""

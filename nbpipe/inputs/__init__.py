"""What teams hand us (YAML specs, Binder repositories, requirements files) and the bounded
readers that check it."""

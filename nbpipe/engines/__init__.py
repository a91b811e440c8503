"""Engines lower the same Image to a real builder. None of them decides what an image is."""

"""The recipe as values: images, steps, ops and the catalog; what an image *is*."""

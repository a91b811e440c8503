"""What travels beside an image: SBOMs, signatures, provenance and vulnerability reports."""

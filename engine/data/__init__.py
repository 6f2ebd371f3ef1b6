"""Data for training and evaluation: the GoPro-style blur synthesiser (numpy + OpenCV only)."""

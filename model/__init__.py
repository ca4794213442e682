"""sam2-tracker: SAM2 video tracking as a KServe predictor (`python -m model`)."""

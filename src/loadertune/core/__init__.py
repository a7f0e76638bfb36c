"""Measuring and classifying: imports nothing above it."""

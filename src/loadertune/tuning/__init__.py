"""Searching the DataLoader knobs: strategies propose, tune measures, pick decides."""

"""Renderers: they read a Result and never measure, and never import torch."""

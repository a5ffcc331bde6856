"""Gymnasium environments, wrappers and scripted experts."""

"""Tests of tollway.serving."""

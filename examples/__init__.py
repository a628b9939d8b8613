"""Example applications built on starling's public API."""

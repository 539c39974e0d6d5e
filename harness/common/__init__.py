"""What every stage shares: errors, registries, config sections, lazy imports, the on-disk cache, progress
events and their console output, and the device and thread settings. Imports nothing from the stages."""

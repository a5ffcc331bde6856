"""Data path: zarr episodes -> padded windows -> normalized batches."""

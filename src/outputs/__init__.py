"""What a trained generator produces: image grids (visuals.py), generated images and latent walks (generate.py,
for eval.py and infer.py), and exported MINDIR / ONNX / AIR files (export_model.py, for export.py)."""

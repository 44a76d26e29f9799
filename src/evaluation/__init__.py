"""How good a trained DCGAN is: sample quality (during training and offline) and D's learned representation.

    judge.py          QualityJudge: one generator -> swd, cfid/ckid, fid/kid against a dataset's real images
    swd.py            sliced Wasserstein distance on Laplacian-pyramid patches
    classifier.py     the small classifier whose features cfid/ckid use (trained once per dataset, cached)
    feature_model.py  a user-supplied MINDIR/ONNX feature network (fid/kid)
    frechet.py        Fréchet distance between Gaussian fits of two feature sets
    kernel.py         kernel distance (KID) between two feature sets
    representation.py the paper's test: linear SVMs on D's features (verify.py)

Code outside this package imports QualityJudge and the metric names from `src.evaluation`.
"""
from src.evaluation.judge import METRICS, QualityJudge, default_metrics, parse_metrics

__all__ = ["METRICS", "QualityJudge", "default_metrics", "parse_metrics"]

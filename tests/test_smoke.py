import numpy as np

import jax_scc
import reference as ref
from images import seed_pair

# torchmetrics 1.9.0 SpatialCorrelationCoefficient()(preds=recon, target=phantom),
# float32, as printed in the seed example (../shared/seed).
SEED_TORCHMETRICS_FLOAT32 = 0.14591339230537415


def test_seed_score_matches_torchmetrics_and_float64():
    preds, target = seed_pair()
    score = float(jax_scc.spatial_correlation_coefficient(preds, target))
    assert abs(score - SEED_TORCHMETRICS_FLOAT32) < 1e-6
    assert abs(score - ref.scc(preds, target)) < 1e-6

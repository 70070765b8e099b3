"""Online anomaly models (River) for the `model` rule kind: which estimators a pack may
name (estimators.py), the features they read (features.py), and the kind itself (kind.py)."""

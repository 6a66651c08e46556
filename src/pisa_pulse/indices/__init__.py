"""The index science: HOMEPOS model, fit and calibration, learned parameters, codebook seed."""

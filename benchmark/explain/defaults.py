"""Names and defaults of the explain command, importable without torch (for the command line parser)."""

CAM_NAMES = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam")
DEFAULT_CAMS = ("gradcam", "gradcam++")
NOISE_KINDS = ("gaussian", "salt_pepper")
DEFAULT_LEVELS = {"gaussian": (0.0, 0.05, 0.1, 0.2), "salt_pepper": (0.0, 0.02, 0.05, 0.1)}
PARTS = ("cams", "noise", "diversity")

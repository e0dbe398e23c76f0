"""The temporal half of vsr: optical flow, warping, occlusion, scene cuts, stabilisation."""

from vsr.temporal.flow import DISFlow, FlowEstimator, bidirectional_flow, luma, make_flow
from vsr.temporal.scenecut import CutScores, SceneCutDetector, detect_cuts
from vsr.temporal.warp import occlusion_mask, outside_mask, resize_flow, upscale_flow, warp

__all__ = [
    "CutScores",
    "DISFlow",
    "FlowEstimator",
    "SceneCutDetector",
    "bidirectional_flow",
    "detect_cuts",
    "luma",
    "make_flow",
    "occlusion_mask",
    "outside_mask",
    "resize_flow",
    "upscale_flow",
    "warp",
]

"""SAM 2 on single images: prompted masks (Meta's ``SAM2ImagePredictor``) and automatic masks
(Meta's ``SAM2AutomaticMaskGenerator``), on the same ``Sam2Model`` the tracker runs.

>>> from sam2_ros.image import SamImagePredictor, AutomaticMaskGenerator
>>> predictor = SamImagePredictor(model); predictor.set_image(rgb)
>>> masks, ious, low_res = predictor.predict(point_coords=[[500, 375]], point_labels=[1])
>>> records = AutomaticMaskGenerator(model).generate(rgb)
"""

from sam2_ros.image.auto_track import prompt_everything, prompt_tracker_with_records, record_mask, select_records
from sam2_ros.image.generator import AutomaticMaskGenerator
from sam2_ros.image.predictor import SamImagePredictor

__all__ = [
    "AutomaticMaskGenerator",
    "SamImagePredictor",
    "prompt_everything",
    "prompt_tracker_with_records",
    "record_mask",
    "select_records",
]

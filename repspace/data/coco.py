"""COCO-style caption data on disk: ``{"images": [{id, file_name}], "annotations": [{image_id, caption}]}``.

Images load lazily with PIL (RGB, resized square).  The JSON is validated eagerly, with a
one-line ``ValueError`` naming the file and the offending entry, and by default every image
file is checked to exist at construction (``check_files``), so a broken dataset fails before
training starts rather than hours into it.
"""

from __future__ import annotations

import os

import torch

from repspace.data._io import read_json, require_keys, require_list
from repspace.data.images import load_image, to_float_tensor

__all__ = ["CocoCaptions"]


class CocoCaptions(torch.utils.data.Dataset):
    """Caption dataset from a COCO caption JSON and an image folder.

    Args:
        annotation_file: path of the caption JSON.
        image_dir: folder holding the ``file_name`` of every image.
        image_size: images are resized to ``image_size x image_size`` (bicubic).
        per_caption: ``False`` (default): one item per image (evaluation);
            ``True``: one item per annotation (training).
        image_format: ``"uint8"`` (``(H, W, 3)`` numpy) or ``"float"`` (``(3, H, W)`` tensor in [0, 1]).
        check_files: check at construction that every captioned image exists.

    Items: ``{"image", "caption", "captions", "id"}`` where ``captions`` are all references of
    the image in file order, ``caption`` is the first one (or this item's annotation with
    ``per_caption``) and ``id`` is the COCO image id.  Images without any caption are skipped.
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        image_size: int = 224,
        per_caption: bool = False,
        image_format: str = "uint8",
        check_files: bool = True,
    ) -> None:
        if image_format not in ("uint8", "float"):
            raise ValueError(f"image_format must be 'uint8' or 'float', got {image_format!r}")
        path = os.fspath(annotation_file)
        doc = read_json(path, "caption annotations")
        images = require_list(doc, "images", path)
        annotations = require_list(doc, "annotations", path)
        files: dict = {}
        for k, im in enumerate(images):
            require_keys(im, ("id", "file_name"), f"images[{k}]", path)
            if im["id"] in files:
                raise ValueError(f"{path}: images[{k}] repeats image id {im['id']!r}")
            files[im["id"]] = im["file_name"]
        caps: dict = {}
        for k, ann in enumerate(annotations):
            require_keys(ann, ("image_id", "caption"), f"annotations[{k}]", path)
            if ann["image_id"] not in files:
                raise ValueError(
                    f"{path}: annotations[{k}] refers to image_id {ann['image_id']!r}, which is not in 'images'"
                )
            if not isinstance(ann["caption"], str):
                raise ValueError(
                    f"{path}: annotations[{k}] caption must be a string, got {type(ann['caption']).__name__}"
                )
            caps.setdefault(ann["image_id"], []).append(ann["caption"].strip())
        self.image_dir, self.image_size, self.image_format = (
            os.fspath(image_dir),
            image_size,
            image_format,
        )
        self.image_ids = [i for i in files if i in caps]  # JSON order, captioned images only
        self.files = {i: os.path.join(self.image_dir, files[i]) for i in self.image_ids}
        self.captions = caps
        if check_files:
            for i in self.image_ids:
                if not os.path.isfile(self.files[i]):
                    raise ValueError(
                        f"{path}: image file for image_id {i!r} does not exist: {self.files[i]}"
                    )
        self.items = (
            [(i, c) for i in self.image_ids for c in range(len(caps[i]))]
            if per_caption
            else [(i, 0) for i in self.image_ids]
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        image_id, c = self.items[k]
        img = load_image(self.files[image_id], self.image_size)
        return {
            "image": img if self.image_format == "uint8" else to_float_tensor(img),
            "caption": self.captions[image_id][c],
            "captions": list(self.captions[image_id]),
            "id": image_id,
        }

    def references(self) -> list[list[str]]:
        """Reference captions per image, in item order of the per-image view (for the metrics)."""
        return [list(self.captions[i]) for i in self.image_ids]

"""VQAv2-style data on disk.

* questions JSON: ``{"questions": [{question_id, image_id, question}]}``
* annotations JSON (optional, absent for test splits):
  ``{"annotations": [{question_id, answers: [{answer}, ...], multiple_choice_answer}]}``
  (an ``image_id`` in an annotation, as in VQAv2, must agree with its question's)
* an image folder, file names from ``file_pattern`` (default COCO's
  ``COCO_{split}_{image_id:012d}.jpg``; fields ``split`` and ``image_id``).

Validation mirrors :mod:`repspace.data.coco`: eager, one-line ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
from collections import Counter

import torch

from repspace.data._io import read_json, require_keys, require_list
from repspace.data.images import load_image, to_float_tensor

__all__ = ["VQADataset", "COCO_FILE_PATTERN", "check_file_pattern"]

COCO_FILE_PATTERN = "COCO_{split}_{image_id:012d}.jpg"
_PATTERN_FIELDS = ("split", "image_id")


def check_file_pattern(pattern, where: str) -> str:
    """``pattern`` if it is a ``str.format`` pattern using only the fields ``split`` and
    ``image_id``, with short format specs (``{image_id:012d}``); ``ValueError`` naming
    ``where`` otherwise (an attribute lookup such as ``{image_id.__class__}``, or a width of
    ``{image_id:>1000000000}`` that would build a gigabyte file name, is refused)."""
    import string

    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{where}: file_pattern must be a non-empty string, got {pattern!r}")
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValueError(
            f"{where}: file_pattern {pattern!r} is not a format pattern ({exc})"
        ) from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in _PATTERN_FIELDS or conversion is not None or "{" in (spec or ""):
            raise ValueError(
                f"{where}: file_pattern {pattern!r} may only use {{split}} and "
                f"{{image_id}} (with a format such as {{image_id:012d}}); got {{{field}}}"
            )
        width = "".join(c for c in (spec or "") if c.isdigit())
        if len(spec or "") > 16 or (width and int(width[:6]) > 255):
            raise ValueError(
                f"{where}: file_pattern {pattern!r}: format {spec!r} is too wide for a file name"
            )
    return pattern


class VQADataset(torch.utils.data.Dataset):
    """VQA dataset from VQAv2-style JSON files and an image folder.

    Args:
        questions_file: questions JSON.
        image_dir: image folder.
        annotations_file: annotations JSON, or ``None`` (items then have no answers).
        split: substituted for ``{split}`` in ``file_pattern`` (e.g. ``"val2014"``).
        file_pattern: ``str.format`` pattern with fields ``split`` and ``image_id``.
        image_size, image_format, check_files: as in :class:`~repspace.data.coco.CocoCaptions`.

    Items: ``{"image", "question", "question_id", "id"}`` (``id`` = image id) plus, with
    annotations, ``"answers"`` (all human answers, typically 10) and ``"answer"``
    (``multiple_choice_answer``, else the most frequent human answer).
    """

    def __init__(
        self,
        questions_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        annotations_file: str | os.PathLike | None = None,
        split: str = "val2014",
        file_pattern: str = COCO_FILE_PATTERN,
        image_size: int = 224,
        image_format: str = "uint8",
        check_files: bool = True,
    ) -> None:
        if image_format not in ("uint8", "float"):
            raise ValueError(f"image_format must be 'uint8' or 'float', got {image_format!r}")
        qpath = os.fspath(questions_file)
        check_file_pattern(file_pattern, f"images of {qpath}")
        qs = require_list(read_json(qpath, "VQA questions"), "questions", qpath)
        self.questions: list[dict] = []
        seen: dict = {}
        for k, q in enumerate(qs):
            require_keys(q, ("question_id", "image_id", "question"), f"questions[{k}]", qpath)
            if q["question_id"] in seen:
                raise ValueError(
                    f"{qpath}: questions[{k}] repeats question_id {q['question_id']!r}"
                )
            seen[q["question_id"]] = k
            self.questions.append(
                {
                    "question_id": q["question_id"],
                    "image_id": q["image_id"],
                    "question": str(q["question"]).strip(),
                }
            )
        self.answers: dict | None = None
        if annotations_file is not None:
            self.answers = self._read_annotations(os.fspath(annotations_file), seen, qpath)
        self.image_dir, self.split, self.file_pattern = os.fspath(image_dir), split, file_pattern
        self.image_size, self.image_format = image_size, image_format
        self.files: dict = {}
        for q in self.questions:
            i = q["image_id"]
            if i not in self.files:
                try:
                    name = file_pattern.format(split=split, image_id=i)
                except (KeyError, IndexError, ValueError) as e:
                    raise ValueError(
                        f"{qpath}: file_pattern {file_pattern!r} cannot format image_id {i!r}: {e}"
                    ) from None
                self.files[i] = os.path.join(self.image_dir, name)
                if check_files and not os.path.isfile(self.files[i]):
                    raise ValueError(
                        f"{qpath}: image file for image_id {i!r} does not exist: {self.files[i]}"
                    )

    def _read_annotations(self, apath: str, seen: dict, qpath: str) -> dict:
        anns = require_list(read_json(apath, "VQA annotations"), "annotations", apath)
        out: dict = {}
        for k, a in enumerate(anns):
            where = f"annotations[{k}]"
            require_keys(a, ("question_id", "answers"), where, apath)
            qid = a["question_id"]
            if qid not in seen:
                raise ValueError(
                    f"{apath}: {where} refers to question_id {qid!r}, which is not in {qpath}"
                )
            q_image = self.questions[seen[qid]]["image_id"]
            if "image_id" in a and a["image_id"] != q_image:
                raise ValueError(
                    f"{apath}: {where} has image_id {a['image_id']!r} but question {qid!r} is about image {q_image!r}"
                )
            if not isinstance(a["answers"], list) or not a["answers"]:
                raise ValueError(f"{apath}: {where} 'answers' must be a non-empty list")
            for j, ans in enumerate(a["answers"]):
                require_keys(ans, ("answer",), f"{where}.answers[{j}]", apath)
            answers = [str(ans["answer"]) for ans in a["answers"]]
            best = a.get("multiple_choice_answer") or Counter(answers).most_common(1)[0][0]
            out[qid] = (answers, str(best))
        missing = [q["question_id"] for q in self.questions if q["question_id"] not in out]
        if missing:
            raise ValueError(
                f"{apath}: no annotation for {len(missing)} question(s), e.g. question_id {missing[0]!r}"
            )
        return out

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, k: int) -> dict:
        q = self.questions[k]
        img = load_image(self.files[q["image_id"]], self.image_size)
        item = {
            "image": img if self.image_format == "uint8" else to_float_tensor(img),
            "question": q["question"],
            "question_id": q["question_id"],
            "id": q["image_id"],
        }
        if self.answers is not None:
            item["answers"], item["answer"] = (
                list(self.answers[q["question_id"]][0]),
                self.answers[q["question_id"]][1],
            )
        return item

    def references(self) -> list[list[str]]:
        """Human answers per question in item order (for :func:`repspace.evaluation.vqa_accuracy`)."""
        if self.answers is None:
            raise ValueError(
                "this VQADataset was built without an annotations file; it has no answers"
            )
        return [list(self.answers[q["question_id"]][0]) for q in self.questions]

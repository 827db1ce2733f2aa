"""Camera frames stored as encoded images (LeRobot's ``image`` dtype: PNG/JPEG bytes in the data
parquet, as Hugging Face ``datasets`` stores an ``Image`` feature)."""

from __future__ import annotations

import io

import numpy as np

from .errors import DataFileError


def decode_image(data: bytes) -> np.ndarray:
    """Decode one encoded image with Pillow (what ``datasets`` decodes them with) to ``uint8 [H, W, C]``.

    Channels are the file's own, as LeRobot's ``ToTensor`` keeps them: RGB 3, grey (``L``) 1, RGBA 4.

    Raises:
        DataFileError: the bytes are not a decodable image, or not 8 bits per channel (the caller
            adds where: file, episode, frame, camera).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataFileError(f"cannot decode the stored image: {e}") from None
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise DataFileError(f"image of dtype {arr.dtype} ({img.mode}); prf reads 8-bit images only")
    return arr[..., None] if arr.ndim == 2 else arr

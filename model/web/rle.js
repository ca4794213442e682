// COCO compressed RLE, as pycocotools writes it (maskApi.c rleToString): run lengths over the
// column-major mask, starting with a run of 0s; each count in 6-bit groups offset by 48 ('0'),
// 0x20 = more groups follow, 0x10 in the last group = negative; counts after the second are
// stored as the difference to the count two before.
export function decodeCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Paints the mask's pixels in `rgb` (opaque) into RGBA `data` of an image `width` wide.
export function paintRle(rle, data, width, rgb) {
  const height = rle.size[0];
  const counts = decodeCounts(rle.counts);
  let pos = 0;
  for (let r = 0; r < counts.length; r += 1) {
    const n = counts[r];
    if (r % 2 === 1) {
      let x = Math.floor(pos / height);
      let y = pos - x * height;
      for (let i = 0; i < n; i += 1) {
        const o = (y * width + x) * 4;
        data[o] = rgb[0];
        data[o + 1] = rgb[1];
        data[o + 2] = rgb[2];
        data[o + 3] = 255;
        y += 1;
        if (y === height) {
          y = 0;
          x += 1;
        }
      }
    }
    pos += n;
  }
}

"""Writing video shards from spans of source videos by remuxing packets with PyAV (no decode, no encode).

A span is ``[f0, f1)``, frame numbers in presentation order of one source file (from its packet index,
:func:`prf.decode.get_index`). Its packets are copied into the output stream with their pts shifted so
that the output timeline is contiguous: span k starts where span k-1 ended (``n / fps`` later).

A span that starts on a keyframe (LeRobot encodes every episode from a keyframe, GOP 2) is copied
whole. A span that starts inside a GOP cannot be copied from there (its first frames reference frames
before the cut): only the frames from the cut to the next keyframe are decoded and re-encoded with
:mod:`prf.encode`'s encoder and options (the source's codec family, a keyframe first), the rest is
copied. A span that ends inside a GOP is copied up to its last frame when those packets are a prefix of
the GOP in decode order (always, for streams without frame reordering); otherwise that GOP's frames are
re-encoded too. Re-encoded frames differ from the source within the codec's loss; copied frames decode
bit-equal.

Codecs prf has no encoder for (HEVC: see :data:`prf.encode.ENCODERS`; VP9, MPEG-4 ...) are never
re-encoded: a span that starts inside a GOP is copied from that GOP's keyframe, and one whose last GOP
cannot be cut is copied to the GOP's end. The output then holds a few frames no episode refers to
(``padded_frames``: fewer than a GOP per cut), and the episode's ``from_timestamp`` points past the
leading ones; every frame an episode uses is the source's packet, bit-equal. LeRobot (which seeks by
``from_timestamp + timestamp``) reads such files as it reads its own.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..decode import get_index
from ..encode import encoder_options, pick_encoder
from ..errors import EditError, VideoError

#: decoder name (as the packet index reports it) -> codec family the re-encode uses
#: CRF of re-encoded GOPs: near-lossless, so a cut frame stays within the parity tolerance of its
#: source (measured on a test pattern: CRF 30, LeRobot's, gave mean |diff| 1.6 / max 20; CRF 4
#: 0.5 / 6; CRF 1 0 / 0). Only the frames from a cut to the next keyframe are encoded this way.
REENCODE_CRF = 1

_FAMILY = {"libdav1d": "av1", "av1": "av1", "libaom-av1": "av1", "h264": "h264"}


class SourceVideo:
    """One open source file: its packet index and a demuxer positioned by :meth:`packets`."""

    def __init__(self, path: str | Path):
        import av

        self.path = str(path)
        self.index = get_index(self.path)
        try:
            self.container = av.open(self.path)
        except (av.FFmpegError, OSError) as e:
            raise VideoError(f"{self.path}: cannot be opened ({e})") from None
        self.stream = self.container.streams.video[0]
        self.time_base = Fraction(self.stream.time_base)
        self._it = None
        self._next = -1  # frame the open demux iterator continues with, -1 when none
        self._ahead: list = []  # packets read past the previous span's end

    def close(self) -> None:
        self.container.close()

    def packets(self, f0: int, f1: int) -> tuple[list, bool]:
        """Packets of frames ``[f0, f1)`` in decode order (``f0`` must be a keyframe) and whether they
        are a decode-order prefix of every GOP they touch (False: the span's last GOP is cut so that a
        frame it keeps needs one it drops)."""
        idx = self.index
        want_lo, want_hi = int(idx.pts[f0]), int(idx.pts[f1 - 1])
        need = f1 - f0
        if f0 != self._next:
            self.container.seek(want_lo, stream=self.stream, backward=True, any_frame=False)
            self._it = self.container.demux(self.stream)
            self._ahead = []
        out: list = []
        prefix_ok, dropped_in_gop = True, False
        last_gop_pts = int(idx.pts[idx.gop_start[f1 - 1]])
        pending, self._ahead = self._ahead, []
        source = _chain(pending, self._it)
        for pkt in source:
            if pkt.pts is None:
                continue
            p = int(pkt.pts)
            if p < want_lo:
                continue
            if p > want_hi:
                self._ahead.append(pkt)
                if p >= last_gop_pts and not pkt.is_keyframe:
                    dropped_in_gop = True
                if pkt.is_keyframe and len(out) == need:
                    break
                continue
            if dropped_in_gop:
                prefix_ok = False
            out.append(pkt)
            if len(out) == need:
                # a reordered stream may still hold frames of this span after a later one: read on
                # only while we are not done
                break
        if len(out) != need:
            raise VideoError(f"{self.path}: frames {f0}..{f1 - 1}: demuxed {len(out)} packets, expected {need}")
        self._next = f1
        return out, prefix_ok

    def decode_frames(self, f0: int, f1: int) -> list:
        """Decoded frames ``[f0, f1)`` (``av.VideoFrame``, source pixel format), decoding forward from
        the keyframe of ``f0``'s GOP."""
        import av

        idx = self.index
        wanted = set(int(p) for p in idx.pts[f0:f1])
        start = int(idx.pts[idx.gop_start[f0]])
        frames = []
        with av.open(self.path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            c.seek(start, stream=s, backward=True, any_frame=False)
            for fr in c.decode(s):
                if fr.pts is None:
                    continue
                if int(fr.pts) in wanted:
                    frames.append(fr)
                    if len(frames) == len(wanted):
                        break
        if len(frames) != len(wanted):
            raise VideoError(f"{self.path}: frames {f0}..{f1 - 1}: decoded {len(frames)}, expected {len(wanted)}")
        frames.sort(key=lambda f: f.pts)
        self._next = -1  # another container was used; the demuxer stays where it was
        return frames


def _chain(first, rest):
    yield from first
    while rest is not None:
        try:
            pkt = next(rest)
        except (StopIteration, RuntimeError):  # the demuxer is at the end of the file
            return
        yield pkt


def _annexb_to_avcc(pkt, length_size: int):
    """An H.264 packet from an encoder without global header (Annex B: NAL units after 00 00 01 start
    codes, SPS/PPS in band) as mp4 wants it: each NAL unit prefixed by its length (``length_size``
    bytes, big-endian). Packets already in that form pass unchanged."""
    import re

    import av

    data = bytes(pkt)
    if not (data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")):
        return pkt
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    out = bytearray()
    for k, a in enumerate(starts):
        b = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        nal = data[a:b]
        if k + 1 < len(starts) and nal.endswith(b"\x00"):  # a 4-byte start code's leading zero
            nal = nal[:-1]
        out += len(nal).to_bytes(length_size, "big") + nal
    new = av.Packet(bytes(out))
    new.pts, new.dts, new.time_base = pkt.pts, pkt.dts, pkt.time_base
    new.is_keyframe = pkt.is_keyframe
    return new


class ShardWriter:
    """One output mp4 assembled from spans. The stream's codec parameters are copied from
    ``template`` (a source file of the same camera).

    Attributes:
        frames: frames written so far. bytes: packet bytes written so far.
        reencoded_frames: frames that had to be re-encoded (span starts or ends inside a GOP).
        padded_frames: frames copied only because a GOP could not be cut and prf has no encoder for
            the codec (not referred to by any episode; see the module docstring).
    """

    def __init__(self, path: str | Path, template: SourceVideo, fps: float):
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream_from_template(template.stream, opaque=True)
        self.stream.time_base = template.time_base
        self.family = _FAMILY.get(template.index.codec)
        self.width, self.height = template.index.width, template.index.height
        self.pix_fmt = template.index.pix_fmt
        self.offset = Fraction(0)  # seconds: where the next span starts in the output
        self.frames = 0
        self.bytes = 0
        self.reencoded_frames = 0
        self.padded_frames = 0
        # H.264 in mp4 (avcC): NAL units are prefixed by their length in this many bytes (avcC byte 4)
        extradata = template.stream.codec_context.extradata or b""
        self._nal_length_size = (extradata[4] & 3) + 1 if len(extradata) > 4 and extradata[0] == 1 else 4
        self._last_dts: int | None = None  # of the last muxed packet, in the stream's time base
        self._delay = 0  # pts - dts of the last copied packet, in the stream's time base (B-frame delay)

    def add_span(self, src: SourceVideo, f0: int, f1: int) -> float:
        """Append source frames ``[f0, f1)``; returns the output time (seconds) of frame ``f0``."""
        idx = src.index
        if not (0 <= f0 < f1 <= idx.num_frames):
            raise EditError(f"{src.path}: frames {f0}..{f1 - 1} are outside the video's {idx.num_frames} frames")
        start = self.offset
        if self.family is None:
            return self._add_padded(src, f0, f1)
        t0 = Fraction(int(idx.pts[f0])) * src.time_base
        keys = np.flatnonzero(idx.keyframe[f0:f1]) + f0
        if keys.size == 0 or keys[0] != f0:  # starts inside a GOP: re-encode up to the next keyframe
            cut = int(keys[0]) if keys.size else f1
            self._reencode(src, f0, cut, t0)
            f_copy = cut
        else:
            f_copy = f0
        if f_copy < f1:
            pkts, prefix_ok = src.packets(f_copy, f1)
            if prefix_ok:
                self._copy(pkts, src.time_base, t0)
            else:  # the last GOP is cut mid-way in a reordered stream: copy the whole GOPs, re-encode it
                g = int(idx.gop_start[f1 - 1])
                if g > f_copy:
                    pkts, _ = src.packets(f_copy, g)
                    self._copy(pkts, src.time_base, t0)
                self._reencode(src, g, f1, t0)
        self.offset = start + Fraction(f1 - f0) / self.fps
        return float(start)

    def _add_padded(self, src: SourceVideo, f0: int, f1: int) -> float:
        """:meth:`add_span` without re-encoding: whole GOPs from ``f0``'s keyframe, up to ``f1`` or, when
        the last GOP cannot be cut there, to that GOP's end; returns the output time of frame ``f0``."""
        idx = src.index
        start = self.offset
        lead = int(idx.gop_start[f0])
        t_lead = Fraction(int(idx.pts[lead])) * src.time_base
        pkts, prefix_ok = src.packets(lead, f1)
        end = f1
        if not prefix_ok:
            later = np.flatnonzero(idx.keyframe[f1:]) + f1
            end = int(later[0]) if later.size else idx.num_frames
            pkts, _ = src.packets(lead, end)
        self._copy(pkts, src.time_base, t_lead)
        self.padded_frames += (f0 - lead) + (end - f1)
        self.offset = start + Fraction(end - lead) / self.fps
        return float(start + (Fraction(int(idx.pts[f0])) * src.time_base - t_lead))

    def _copy(self, pkts: list, tb: Fraction, t0: Fraction) -> None:
        self._mux_shifted(pkts, tb, round((self.offset_base(t0)) / tb))
        self.frames += len(pkts)

    def _mux_shifted(self, pkts: list, tb: Fraction, shift: int, *, copied: bool = True) -> None:
        """Mux ``pkts`` (pts/dts in ``tb``) into the output stream, ``shift`` units of ``tb`` later.

        Timestamps are rescaled to the output stream's time base here, so that decode timestamps stay
        strictly increasing across spans: a stream with B-frame delay (x264's default) has dts one or
        more frames before pts, re-encoded GOPs (no B-frames) have dts = pts, and where the two meet
        dts must not repeat (the mp4 muxer refuses it with EINVAL). Re-encoded packets get the copied
        packets' delay (``copied=False``); a dts that would still not increase is moved up by one unit
        of the output time base, never past its pts (else EditError)."""
        out_tb = Fraction(self.stream.time_base)
        same = tb == out_tb  # copied packets: integer arithmetic (a Fraction per packet costs ~20 us)
        first_floor = None
        if self._last_dts is None and copied and len(pkts) > 1 and pkts[1].dts is not None:
            # the file's first packet: a keyframe of an open-GOP stream (x265's default) is decoded
            # frames before its pts (leading B-frames of the previous GOP came between); copied first, that
            # early dts would stretch the stream's duration (FFmpeg's average frame rate then differs
            # from fps). Any dts below the next packet's keeps the decode order: one frame before it.
            second = round(Fraction(int(pkts[1].dts) + shift) * tb / out_tb)
            first_floor = second - max(1, round(1 / (self.fps * out_tb)))
        for pkt in pkts:
            if same:
                pts_o = int(pkt.pts) + shift
                dts_o = int(pkt.dts) + shift if pkt.dts is not None else pts_o
            else:
                pts = Fraction(int(pkt.pts) + shift) * tb
                pts_o = round(pts / out_tb)
                dts_o = round((Fraction(int(pkt.dts) + shift) * tb) / out_tb) if pkt.dts is not None else pts_o
            if first_floor is not None:
                dts_o, first_floor = min(pts_o, max(dts_o, first_floor)), None
            if copied:
                self._delay = pts_o - dts_o  # B-frame delay in units of the output time base
            else:
                dts_o = pts_o - self._delay
            if self._last_dts is not None and dts_o <= self._last_dts:
                dts_o = self._last_dts + 1
            if dts_o > pts_o:
                raise EditError(f"{self.path}: cannot keep decode timestamps increasing at pts "
                                f"{float(pts_o * out_tb):.4f} s "
                                f"(a cut between packets with different B-frame delays)")
            pkt.pts, pkt.dts, pkt.time_base = pts_o, dts_o, out_tb
            pkt.stream = self.stream
            self._last_dts = dts_o
            self.bytes += pkt.size
            self.container.mux(pkt)

    def offset_base(self, t0: Fraction) -> Fraction:
        """Seconds to add to a source time so that source time ``t0`` lands on the span start."""
        return self._span_start - t0

    def _reencode(self, src: SourceVideo, f0: int, f1: int, t0: Fraction) -> None:
        import av

        if self.family is None:
            raise EditError(
                f"{src.path}: frames {f0}..{f1 - 1} start or end inside a GOP and must be re-encoded, but prf "
                f"has no encoder for codec {src.index.codec!r}"
            )
        frames = src.decode_frames(f0, f1)
        name = pick_encoder(self.family)
        cc = av.CodecContext.create(name, "w")
        cc.width, cc.height, cc.pix_fmt = self.width, self.height, "yuv420p"
        tb = Fraction(1, 1) / self.fps
        cc.time_base = tb
        cc.framerate = self.fps
        opts = encoder_options(name, crf=REENCODE_CRF)
        if name == "libx264":
            # no B-frames; parameter sets in band with their own ids (1), so the spliced GOP carries the
            # SPS/PPS it was encoded with and the copied packets keep the file's own (id 0, in avcC)
            opts["bf"] = "0"
            opts["x264-params"] = "sps-id=1"
        cc.options = opts
        base = round((self.offset_base(t0) + Fraction(int(src.index.pts[f0])) * src.time_base) / tb)
        pkts = []
        for k, fr in enumerate(frames):
            fr = fr.reformat(format="yuv420p") if fr.format.name != "yuv420p" else fr
            fr.pts, fr.time_base = k, tb
            pkts += cc.encode(fr)
        pkts += cc.encode(None)
        if len(pkts) != len(frames):
            raise EditError(f"{src.path}: re-encoding frames {f0}..{f1 - 1} gave {len(pkts)} packets")
        if name == "libx264":
            pkts = [_annexb_to_avcc(pkt, self._nal_length_size) for pkt in pkts]
        self._mux_shifted(pkts, tb, base, copied=False)
        self.frames += len(frames)
        self.reencoded_frames += len(frames)

    @property
    def _span_start(self) -> Fraction:
        return self.offset

    def close(self) -> None:
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the caller removes the partial file
            pass

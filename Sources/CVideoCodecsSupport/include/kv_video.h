#ifndef KOSMOS_KV_VIDEO_H
#define KOSMOS_KV_VIDEO_H
// C side of the video decoders and of the small video encoder the demos use. FFmpeg's libavformat,
// libavcodec and libswscale demux, decode and convert every container and codec we need (MP4/H.264,
// WebM/VP9, MKV, AVI/MJPEG, GIF, ...), but their API is structs, callbacks and macros whose layout
// changes between releases. So the whole open -> index -> seek -> decode -> RGB loop runs here, and
// Swift sees only this header: plain C types, a status code and a message. This header includes no
// FFmpeg header on purpose. It is the video sibling of ka_audio.h and follows the same rules.
//
// Built without FFmpeg (its headers are absent, e.g. on a Mac without Homebrew's ffmpeg, or FFmpeg is
// older than 5.1), every function returns KVID_NOT_AVAILABLE (kvid_close does nothing).
//
// Opening (kvid_open_file / kvid_open_memory)
//   * The first video stream (lowest stream index; attached pictures such as cover art are not
//     video streams) is used; every other stream is discarded.
//   * The frame size the container or codec states is checked before anything is decoded:
//     width or height < 1: KVID_CORRUPT; width or height > KVID_MAX_DIMENSION, or width * height >
//     max_pixels (when max_pixels > 0): KVID_TOO_MANY_PIXELS. The decoders get the limit too
//     (AVCodecContext.max_pixels, with slack for FFmpeg's stride alignment), also the ones
//     libavformat runs while probing, so a lying header cannot make them allocate huge pictures.
//   * Then ONE demux pass reads every packet of the stream (nothing is decoded in it) and records
//     each packet's presentation timestamp (pts) and keyframe flag. That gives the exact frame
//     count and every frame's timestamp; it is the index used for seeking later. More than
//     max_frames frames (when max_frames > 0): KVID_TOO_MANY_FRAMES (the pass stops there).
//     Packets without a pts get one from libavformat (AVFMT_FLAG_GENPTS: it derives it from the
//     decode order of the following packets, e.g. for B-frames in AVI), as PyAV's newer FFmpeg
//     does by itself. The pass reads the whole file once: about 0.1 s for 72000 packets.
//   * The input is read only through our own reader (files with stdio, not FFmpeg's URL protocols,
//     so a path containing ':' is just a path), and FFmpeg may open nothing else
//     (protocol_whitelist "none" and an io_open that refuses): a playlist, concat script or MP4
//     reference cannot make us read other files or the network. The path's extension is a probing
//     hint.
//
// Frame numbering: "frame i" is the i-th frame in display order.
//   * Every packet of the video stream counts as one frame, except packets of size 0 and packets
//     flagged discard (AV_PKT_FLAG_DISCARD: e.g. the frames an MP4 edit list cuts off), which are
//     skipped: they are not counted, and the decoder does not output them (FFmpeg drops the
//     pictures of discard packets itself). The frames are sorted by pts, so with B-frames (H.264,
//     MPEG-4 ASP) frame i is the i-th frame shown, not the i-th packet in the file.
//   * That is exact for the codecs named above and for all common ones stored one picture per
//     packet: H.264/HEVC in MP4/MKV/WebM/AVI/TS (one access unit per packet), VP8/VP9 in WebM/MKV
//     (an invisible alt-ref frame travels in a superframe with a shown one), AV1, MPEG-4 ASP,
//     MJPEG, GIF, PNG/APNG, FFV1, ProRes. It is not exact where one packet holds no picture to
//     show (a VP8/VP9 alt-ref frame in a packet of its own, e.g. in IVF; H.264/MPEG-2 field
//     pictures coded in separate packets) or more than one: such a packet still counts as one
//     frame, and a wanted frame that the decoder never outputs is filled with a neighbour (see
//     kvid_decode_frames) and counted in substituted_frames.
//   * Indexed mode (info.indexed = 1, the normal case): every counted packet has a pts and no two
//     share one. A decoded picture is then identified by its pts (FFmpeg carries each packet's pts
//     to the picture it decodes to), so frames are found exactly after a seek. Otherwise (a
//     container without timestamps, a broken file with duplicates) the video is unindexed
//     (info.indexed = 0): frame i is the i-th picture the decoder outputs from the start of the
//     file, and every request for an earlier frame than the last decoded one restarts from the
//     beginning (no seeking); frame times are then estimated (see kvid_frame_times).
//   * Timestamps are in seconds, pts * the stream's time base, as the container states them
//     (not shifted to make frame 0 start at 0; PyAV's frame.time gives the same). An MP4 whose
//     B-frame delay is not compensated by an edit list, or an AVI with B-frames, starts after 0.
//
// Seeking (kvid_decode_frames): for each wanted frame w (indices ascending),
//   * if the decoder has already passed w (or reached the end), or the last keyframe at or before
//     w (from the index) lies more than KVID_FORWARD_LIMIT frames after the frame last decoded, it
//     seeks: av_seek_frame(stream, pts of that keyframe, AVSEEK_FLAG_BACKWARD), flushes the
//     decoder and decodes forward from there; otherwise it decodes forward from where it is.
//     So 8 frames of a 2-hour file decode about 8 GOPs, not the whole file.
//   * A seek that lands after w (the first picture decoded after it is later than w, or none
//     before the end: MPEG-TS/PS seek by dts to any packet, not to a keyframe, and the decoder
//     waits for the next keyframe; or an index by dts, or keyframe flags that lie) is retried
//     from the keyframe before, at most KVID_SEEK_RETRIES times, and later seeks in the same
//     video then start that many keyframes earlier; after that, or when the container cannot
//     seek at all (av_seek_frame fails), the input is reopened and decoded from its start.
//     The result does not depend on the path taken: a frame decoded after a seek equals the same
//     frame decoded from the start (checked in our tests for MP4/H.264, WebM/VP9, MKV, AVI/MJPEG,
//     AVI/MPEG-4 with B-frames, GIF, MPEG-TS, MPEG-PS, FLV, IVF, Ogg/Theora, raw H.264).
//   * Decoders of pictures of 640x480 and more use FFmpeg's threads (thread_count 0); the output
//     is the same as single-threaded.
//
// Conversion to RGB24 (libswscale, same-size conversion, no scaling):
//     flags = SWS_BILINEAR (nothing else: no SWS_ACCURATE_RND, no SWS_FULL_CHR_H_INT)
//     source matrix = sws_getCoefficients(frame->colorspace): BT.601 when unspecified, otherwise
//       what the frame states (BT.709, FCC, SMPTE 240M, BT.2020, ...)
//     source range = full when frame->color_range is JPEG (or the pixel format is a yuvj* one,
//       e.g. MJPEG), limited (16-235) otherwise, including unspecified
//     destination: RGB24, full range, row-major, R G B bytes; brightness 0, contrast and
//       saturation 1 (sws_setColorspaceDetails defaults)
//   This is what PyAV 18.1 (FFmpeg 8.1) does in frame.to_ndarray(format="rgb24"): VideoReformatter
//   defaults to SWS_BILINEAR and takes the matrix and range from the frame. With FFmpeg 5.1 here
//   it gives the same bytes as PyAV for 8-bit YUV 4:2:0, 4:2:2 and 4:4:4 (H.264, VP8, VP9, MPEG-2,
//   MPEG-4, FFV1, MJPEG, raw Y4M), tagged BT.601, BT.709, BT.2020 or untagged, limited or full
//   range, for grey (FFV1), RGB24 (PNG, APNG) and BGRA (GIF); see
//   scripts/reference/video_reference.py. (SWS_ACCURATE_RND would leave swscale's special
//   yuv2rgb converter and differ from PyAV by up to 136 levels at sharp chroma edges.) 10-bit
//   input (yuv420p10le) is the exception found: it differs from PyAV (up to 132 levels, mean 6.5
//   on testsrc2; the two swscale versions convert high bit depths with different code).
//   Transfer characteristics and primaries are ignored (no tone mapping; PyAV also ignores them
//   by default). A picture whose size differs from the stream's (a mid-stream resolution
//   change) is scaled to width x height with the same flags.
//
// Bad input (no input makes these functions crash or leak; checked with valgrind and a fuzz loop):
//   * Not a recognised container (0 bytes, text, random bytes, cut after a few bytes, an MP4 cut
//     before its moov atom): KVID_OPEN_FAILED. A media file without a video stream (audio only):
//     KVID_NO_VIDEO. No decoder for the codec in this FFmpeg, or a pixel format libswscale cannot
//     read: KVID_UNSUPPORTED_CODEC.
//   * A demux pass that ends with a read error (a file cut in the middle, damaged container data)
//     keeps the frames read before it: KVID_OK with ignored_errors > 0 and message saying what was
//     ignored. So do packets the demuxer flags corrupt (a last frame cut in the middle), and a
//     stream with fewer frames than the container states, or ending more than 1% + 0.1 s + one
//     frame before its stated duration: a file cut short (truncated.mp4: 7 of 12 frames,
//     ignored_errors 2).
//     Many demuxers stop silently at a cut, so these notes are best effort.
//   * No frame read: KVID_CORRUPT after a read error, or when the container states a duration or
//     frame count (a file cut before its first complete frame); otherwise KVID_EMPTY (a stream
//     with no packets; also a GIF cut inside its header, which states nothing).
//   * Decode errors (damaged packets) are tolerated like video players tolerate them: FFmpeg
//     conceals them, the pictures are returned, ignored_errors counts them; a frame the decoder
//     drops is substituted (see substituted_frames). A wanted frame for which no picture at all
//     can be decoded (none from its seek point, nor from the start, to the end): KVID_CORRUPT.
//     Damage no layer can see (changed bytes inside JPEG data: corrupt.avi) decodes to changed
//     pixels with KVID_OK and no error.
//   * On every status other than KVID_OK from an open, *out is NULL; info holds what was learnt
//     before the failure (container, codec, size), zero/empty if nothing.
//   * KVID_OUT_OF_MEMORY: our own allocations (the index, contexts). An allocation FFmpeg refuses
//     (a corrupt size field asking for more than av_max_alloc's limit) is reported as
//     KVID_OPEN_FAILED / KVID_CORRUPT with "Cannot allocate memory" in the message.
//
// Thread safety: every function may be called concurrently from any threads. Different kvid_video
// objects are independent; calls on one object are serialised by a mutex inside it (but
// kvid_close must not race with other calls on the same object). There is no shared mutable
// state; set once on the first call: FFmpeg's log level (AV_LOG_QUIET, so FFmpeg prints nothing to
// stderr; no log callback is installed, ka_audio's stays in place if it has one) and kvid_version.
#include <stddef.h>
#include <stdint.h>

enum {
    KVID_OK = 0,
    KVID_NOT_AVAILABLE = 1,      // built without FFmpeg (or with an FFmpeg older than 5.1)
    KVID_OPEN_FAILED = 2,        // not a media file / unknown container / the file cannot be read
                                 //   (encoding: the output file cannot be created or written)
    KVID_NO_VIDEO = 3,           // a media file without a video stream
    KVID_UNSUPPORTED_CODEC = 4,  // no decoder (encoder) for the codec in this FFmpeg, it cannot be
                                 //   opened, or libswscale cannot convert its pixel format
    KVID_CORRUPT = 5,            // invalid data (see "Bad input" above); message says why
    KVID_TOO_MANY_PIXELS = 6,    // width * height > max_pixels, or a side > KVID_MAX_DIMENSION
    KVID_TOO_MANY_FRAMES = 7,    // more than max_frames frames
    KVID_EMPTY = 8,              // the video stream has zero frames
    KVID_BAD_ARGUMENT = 9,       // NULL pointer, index out of range or indices not ascending,
                                 //   unknown encoder format, bad size/fps/frame count
    KVID_OUT_OF_MEMORY = 10,     // our own allocations failed
};

enum {
    KVID_MAX_DIMENSION = 16384,  // largest width or height accepted (also for encoding)
    KVID_FORWARD_LIMIT = 16,     // decode forward instead of seeking when the keyframe before the
                                 //   wanted frame is at most this many frames ahead
    KVID_SEEK_RETRIES = 3,       // seeks that landed too late retried from an earlier keyframe
};

typedef struct kvid_video kvid_video;   // an open video; release with kvid_close

// What kvid_open_* learnt, updated by every kvid_decode_frames call (the per-call counters).
typedef struct {
    int width;                   // frame size in pixels (of the stream; every decoded picture is
    int height;                  //   returned at this size)
    int64_t frame_count;         // frames in display order (see "Frame numbering"), >= 1 on KVID_OK
    int64_t keyframe_count;      // how many of them are keyframes (packets flagged key)
    double duration_seconds;     // from the start of frame 0 to the end of the last frame: the
                                 //   largest pts + packet duration minus the smallest pts (a packet
                                 //   without a duration lasts 1/fps)
    double fps;                  // average frame rate: the stream's avg_frame_rate when stated
                                 //   (PyAV's stream.average_rate), else (frame_count - 1) / (time
                                 //   of the last frame - time of frame 0), else 0
    double start_seconds;        // the time of frame 0 (its pts in seconds; often 0)
    int indexed;                 // 1: frames are identified by their pts and can be sought;
                                 //   0: sequential only (see "Frame numbering")
    int ignored_errors;          // open: 1 if the demux pass ended with a read error, plus the
                                 //   packets flagged corrupt, plus 1 if the stream ends before what
                                 //   the container states (see "Bad input"); decode: decode and
                                 //   read errors tolerated in the call
    int64_t decoded_frames;      // decode: pictures the decoder output during the call (also the
                                 //   ones decoded only to reach a wanted frame); open: 0
    int seeks;                   // decode: seeks (and restarts from the beginning) in the call
    int substituted_frames;      // decode: wanted frames the decoder never output, filled with
                                 //   the next decoded picture (or, at the end of the stream, the
                                 //   last one); their timestamps are that picture's
    char codec[32];              // codec name, e.g. "h264", "vp9", "mjpeg", "gif" (encoding: the
                                 //   encoder used, e.g. "libx264" or "mpeg4")
    char container[32];          // container (demuxer) name, e.g. "mov,mp4,m4a,3gp,3g2,mj2",
                                 //   "matroska,webm", "avi", "gif" (cut to 31 bytes; encoding:
                                 //   the muxer, e.g. "mp4")
    char message[256];           // why, when the status is not KVID_OK; for KVID_OK, empty, or
                                 //   what was ignored when ignored_errors > 0
} kvid_info;

// Opens the video at `path` and indexes it (one demux pass, see above). max_pixels > 0: refuse
// width * height above it; max_frames > 0: refuse more frames; <= 0: no limit of ours (the
// KVID_MAX_DIMENSION limit stays). On KVID_OK *out is the open video (release with kvid_close)
// and info describes it; otherwise *out is NULL. info may be NULL (nothing is reported then).
int kvid_open_file(const char *path, int64_t max_pixels, int64_t max_frames, kvid_info *info,
                   kvid_video **out);

// The same from `size` bytes in memory (read through a custom AVIOContext, seekable, so every
// container works). The bytes are read until kvid_close (seeking reads them again): they must
// stay valid and unchanged until then. No extension hint here.
int kvid_open_memory(const uint8_t *data, size_t size, int64_t max_pixels, int64_t max_frames,
                     kvid_info *info, kvid_video **out);

// Writes the presentation time in seconds of frames 0..count-1 (count <= info.frame_count, else
// KVID_BAD_ARGUMENT) to `seconds`, ascending: the same values kvid_decode_frames gives. Indexed
// videos: the exact pts of each frame. Unindexed ones (estimates): the packets' timestamps (pts,
// else dts) sorted, where every packet has one, else start + i / fps; kvid_decode_frames then
// gives the decoder's best-effort timestamp of each picture instead.
int kvid_frame_times(kvid_video *v, double *seconds, int64_t count);

// Decodes the frames at indices[0..count-1] (each in 0..frame_count-1, ascending; repeats allowed)
// into `rgb`: count * height * width * 3 bytes, frame k at rgb + k * height * width * 3, RGB24
// row-major (see "Conversion to RGB24"). timestamps (may be NULL) gets each frame's time in
// seconds. Seeks as described above. count == 0 does nothing (KVID_OK). info (may be NULL) is
// refreshed: the fields from the open plus decoded_frames, seeks, substituted_frames and
// ignored_errors for this call, and message. On an error status the contents of rgb and
// timestamps are unspecified. The video stays usable after any status.
int kvid_decode_frames(kvid_video *v, const int64_t *indices, int count, uint8_t *rgb,
                       double *timestamps, kvid_info *info);

// Releases everything kvid_open_* allocated. NULL is fine.
void kvid_close(kvid_video *v);

// Encodes `frames` RGB24 frames (frames * height * width * 3 bytes, row-major, as above) at `fps`
// frames per second (1...1000) into a new file at `path` (overwritten). `format`:
//   "avi-mjpeg"  AVI, Motion JPEG, full-range 4:2:0 (decoders report yuvj420p), quality q=3,
//                every frame a keyframe
//   "mp4-h264"   MP4, H.264 (libx264: preset medium, crf 20, yuv420p; without libx264 in this
//                FFmpeg: MPEG-4 Part 2, q=3, no B-frames), a keyframe at least every fps frames
//                (1 s)
//   "mkv-h264"   Matroska, the same codec choice as mp4-h264
//   "webm-vp9"   WebM, VP9 (libvpx-vp9: crf 32, deadline good, cpu-used 4, yuv420p), keyframe
//                at least every fps frames
//   "gif"        animated GIF, looping; colours mapped to a fixed 256-colour palette (6x6x6 RGB
//                cube + 40 greys, nearest colour, no dithering); GIF times are in 1/100 s
//   "mkv-ffv1"   Matroska, FFV1 (lossless RGB, bgr0: decodes back to exactly the input bytes)
// RGB -> YUV uses libswscale with SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT, BT.601, limited
// range (full for MJPEG); the streams are tagged BT.601 and their range. 4:2:0 formats need an even
// width and height. Output is deterministic: bitexact muxing and encoding (no Lavf/Lavc version
// strings, no random ids; libx264 still writes its version/options SEI), single-threaded
// encoders; the same FFmpeg and encoder libraries give the same bytes. On failure
// the partial file is removed. info (may be NULL) gets width, height, frame_count, fps,
// duration_seconds, codec (the encoder used), container (the muxer) and message.
int kvid_encode_file(const char *path, const char *format, const uint8_t *rgb, int frames,
                     int width, int height, int fps, kvid_info *info);

// KVID_OK if kvid_encode_file can write `format` with this FFmpeg (its muxer and an encoder are
// present), KVID_UNSUPPORTED_CODEC if not, KVID_BAD_ARGUMENT for an unknown format name.
int kvid_can_encode(const char *format);

// The FFmpeg libraries in use (run-time versions), e.g.
// "libavformat 59.27.100, libavcodec 59.37.100, libswscale 6.7.100, libavutil 57.28.100",
// or a sentence saying FFmpeg is not available. A static string; never NULL.
const char *kvid_version(void);

#endif

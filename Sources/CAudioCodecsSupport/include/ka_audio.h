#ifndef KOSMOS_KA_AUDIO_H
#define KOSMOS_KA_AUDIO_H
// C side of the audio decoders. FFmpeg's libavformat/libavcodec/libswresample decode and resample
// every container and codec we need (mp3, flac, ogg/opus, ogg/vorbis, m4a/aac, wav), but their API
// is a large set of structs, callbacks, AVERROR codes and macros (AVChannelLayout, AVERROR(EAGAIN),
// av_err2str) that Swift imports poorly and whose layout changes between FFmpeg releases. So the
// whole demux -> decode -> resample loop runs here, and Swift sees only this header: plain C types,
// a status code and a message. This header includes no FFmpeg header on purpose.
//
// Built without FFmpeg (its headers are absent, e.g. on a Mac without Homebrew's ffmpeg, or FFmpeg
// is older than 5.1 and lacks the AVChannelLayout API), every function returns KA_NOT_AVAILABLE.
//
// Decoding
//   * The first audio stream (lowest stream index) is decoded; every other stream is discarded.
//   * Encoder delay and padding are removed as FFmpeg 5.1 removes them: the LAME/Xing header for
//     mp3, Opus pre-skip and end granule, Vorbis granules, FLAC/WAV are exact. So the 0.5 s
//     fixtures at 44100 Hz decode to 22050 frames, except AAC in MP4 (m4a): FFmpeg 5.1's mov
//     demuxer drops the 1024 priming frames (edit list) but keeps the end padding, 22528 frames
//     (the ffmpeg CLI gives the same).
//   * Channels are kept as they are (no downmix here; the Swift side averages to mono). The output
//     is interleaved float32, `channels` samples per frame. Unknown/unspecified channel layouts are
//     fine: only the channel count matters, input and output layouts are always identical, so
//     libswresample never rematrixes.
//   * Integer PCM becomes float with FFmpeg's conversion: s16 -> s / 32768, s24 (decoded as s32)
//     and s32 -> s / 2^31, u8 -> (s - 128) / 128; float input is kept as is (double: rounded).
//   * The input is read only through our own reader (files with stdio, not through FFmpeg's URL
//     protocols, so a path containing ':' is just a path), and FFmpeg may open nothing else
//     (protocol_whitelist "none" and an io_open that refuses): a playlist or concat script
//     cannot make us read other files or the network. The path's extension is a probing hint.
//
// Resampling (libswresample, every option set explicitly, all equal to FFmpeg 5.1's defaults:
// cutoff 0 means 0.97 for the swr engine; a default internal format is picked per call):
//     resampler=swr (the built-in engine, not soxr)   filter_size=32   phase_shift=10
//     linear_interp=1   exact_rational=1   cutoff=0.97   filter_type=kaiser   kaiser_beta=9
//     dither_method=none   internal_sample_fmt=fltp   out_sample_fmt=flt (interleaved)
//   internal_sample_fmt=fltp is what swr picks anyway for 1-4 byte input with float output;
//   forcing it makes f64/s64 input (which would get dblp) resample in float too. So s16 input
//   resamples exactly like the same samples given as float: "WAV decoded natively in Swift as
//   s/32768, then ka_resample" equals "ka_decode_file" bit for bit.
//   At the end the resampler is flushed (swr_convert with no input) so the tail is not lost:
//   N source frames at rate R give ceil(N * target_rate / R) frames, e.g. 22050 -> 8000 at 16 kHz.
//   (swr's flush mirrors at most half a filter length, so inputs shorter than about one filter,
//   32 frames when upsampling and 32 * in/out when downsampling, give fewer frames, maybe none.)
//   Downsampling by more than 256:1 is refused (KA_BAD_ARGUMENT): swr's filter grows with it.
//   The decode path always goes through swr, also when the output rate equals the source rate:
//   then swr does not resample, only converts the sample format / interleaves, which is exact
//   (bit-identical to the decoder's samples for float codecs, s / 32768 for s16).
//   ffmpeg CLI equivalent (gives bit-identical samples, see scripts/reference/audio_codec_fixtures.sh):
//     ffmpeg -i IN -map 0:a:0 -af aresample=resampler=swr:filter_size=32:phase_shift=10:
//       linear_interp=1:exact_rational=1:cutoff=0.97:filter_type=kaiser:kaiser_beta=9:
//       dither_method=none:internal_sample_fmt=fltp:osr=16000:osf=flt -c:a pcm_f32le -f f32le OUT
//
// Bad input (no input makes these functions crash or leak; checked with valgrind and a fuzz loop):
//   * Not a recognised container (0 bytes, text, random bytes, cut after a few bytes, an MP4 cut
//     before its moov atom, an Ogg file cut inside its first audio page): KA_OPEN_FAILED.
//   * Sample rate outside 1...768000 or channel count outside 1...64, as stated by the container
//     or by a decoded frame: KA_CORRUPT (as arguments to these functions: KA_BAD_ARGUMENT).
//     A channel count that changes mid-stream: KA_CORRUPT (a rate change is resampled).
//   * Errors: a packet the decoder rejects (err_detect=crccheck: FLAC frame CRCs are checked), a
//     packet the demuxer flags corrupt, or an error-level line in FFmpeg's log (e.g. an Ogg page
//     with a bad CRC, which the demuxer drops silently otherwise). An error followed by a frame
//     that decodes is corruption in the middle of the stream: KA_CORRUPT, the message quotes the
//     first error ("flac: invalid coding type", "ogg: CRC mismatch!"). Errors with no decoded
//     frame after them (a file cut short mid-packet) are tolerated, as FFmpeg tolerates them:
//     KA_OK with the frames decoded before, ignored_errors counting them and message saying what
//     was ignored. A demuxer (read) error ends the stream the same way.
//   * Fewer decoded frames than the container states (not counting durations guessed from the
//     bitrate; tolerance 1% + 0.1 s): if the last packet's timestamp reaches the stated end, data
//     was lost before it (e.g. a dropped Ogg page): KA_CORRUPT. Otherwise the file was cut short:
//     KA_OK, counted in ignored_errors (truncated.mp3: 2943 frames at 16 kHz, ignored_errors 1).
//     An Ogg file cut short decodes to its complete pages with KA_OK and no note (the container
//     states the duration of what is there).
//   * Damage no layer can see (changed bytes inside PCM data, inside an MP3 frame's audio data,
//     which has no checksum) decodes to changed samples with KA_OK.
//   * No decoded samples: KA_EMPTY; none and only errors: KA_CORRUPT.
//   * More than max_frames output frames: KA_TOO_LONG, found while decoding (the decode stops
//     there; the container's duration is not trusted for this).
//   * On every status other than KA_OK, `samples` is NULL and `frames` 0; the other fields hold
//     what was learnt before the failure (container, codec, rate, channels), zero/empty if nothing.
//   * KA_OUT_OF_MEMORY is our own output buffer (or a context) failing to allocate. An allocation
//     FFmpeg refuses (a corrupt size field asking for more than av_max_alloc's 2 GiB) is reported
//     as KA_OPEN_FAILED / KA_CORRUPT with "Cannot allocate memory" in the message.
//
// Thread safety: every function may be called concurrently from any threads. There is no shared
// mutable state; set once on the first call: FFmpeg's log level (AV_LOG_QUIET) and log callback
// (process-wide: it prints nothing, so FFmpeg never writes to stderr; it hands error lines to the
// decode running on the same thread through a thread-local pointer), and the ka_version string.
#include <stddef.h>
#include <stdint.h>

enum {
    KA_OK = 0,
    KA_NOT_AVAILABLE = 1,      // built without FFmpeg (or with an FFmpeg older than 5.1)
    KA_OPEN_FAILED = 2,        // not a media file / unknown container / the file cannot be read
    KA_NO_AUDIO = 3,           // a media file without an audio stream
    KA_UNSUPPORTED_CODEC = 4,  // FFmpeg has no decoder for the stream's codec, or cannot open it
    KA_CORRUPT = 5,            // invalid data (see "Bad input" above); message says why
    KA_TOO_LONG = 6,           // more than max_frames output frames
    KA_BAD_ARGUMENT = 7,       // NULL pointer, rate outside 0/1...768000, channels outside 1...64,
                               //   downsampling by more than 256:1
    KA_OUT_OF_MEMORY = 8,      // the output buffer cannot be allocated (or would not fit in memory)
    KA_EMPTY = 9,              // the stream decoded to zero samples
};

enum {
    KA_MAX_CHANNELS = 64,      // libswresample's limit (SWR_CH_MAX)
    KA_MAX_SAMPLE_RATE = 768000,
};

typedef struct {
    // Interleaved float32 samples, `channels` per frame, at the output rate (target_rate, or the
    // source rate when target_rate is 0). malloc'ed; release with ka_free. NULL unless KA_OK.
    float *samples;
    int64_t frames;                  // frames (samples per channel) in `samples`
    int channels;                    // channel count of the source (kept: the caller averages to mono)
    int source_rate;                 // the stream's own sample rate (of its first decoded frame;
                                     //   opus always decodes at 48000)
    int output_rate;                 // the rate of `samples` (target_rate, or source_rate if 0)
    int64_t source_frames_estimate;  // the container's duration in source frames if it states one,
                                     //   else -1 (an estimate: for mp3 without a Xing header it comes
                                     //   from the bitrate)
    int ignored_errors;              // errors tolerated at the very end of the stream, plus 1 if
                                     //   it ends before the container's stated duration (a cut
                                     //   file); 0 for a clean decode
    char codec[32];                  // codec name, e.g. "mp3", "flac", "opus", "aac", "pcm_s16le"
    char container[32];              // container (demuxer) name, e.g. "mp3", "flac", "ogg", "wav",
                                     //   "mov,mp4,m4a,3gp,3g2,mj2" (cut to 31 bytes)
    char message[256];               // why, when the status is not KA_OK; for KA_OK, empty, or
                                     //   what was ignored when ignored_errors > 0
} ka_audio;

// Decodes the first audio stream of the file at `path`, resampled to target_rate (0: keep the
// source rate). max_frames > 0: stop and return KA_TOO_LONG as soon as more than max_frames output
// frames would be produced (a 10-hour file is not decoded whole); max_frames <= 0: no limit.
// The file name's extension is used as a hint when probing the container, as FFmpeg does.
int ka_decode_file(const char *path, int target_rate, int64_t max_frames, ka_audio *out);

// The same from `size` bytes in memory (read through a custom AVIOContext, seekable, so every
// container works: mp3, flac, ogg/opus, m4a/aac, wav, ...). The bytes are only read during the call.
// Gives the same samples as ka_decode_file on a file holding those bytes (no extension hint here).
int ka_decode_memory(const uint8_t *data, size_t size, int target_rate, int64_t max_frames,
                     ka_audio *out);

// Resamples `frames` interleaved float32 frames of `channels` channels from in_rate to out_rate
// (both 1...768000) with the same libswresample settings as the decoders, flushed at the end.
// Used for WAV files the Swift code decodes natively at a rate other than the model's. If the
// rates are equal the samples are copied unchanged. frames == 0 gives KA_EMPTY. On KA_OK,
// out->source_rate = in_rate, out->output_rate = out_rate, source_frames_estimate = frames, codec
// and container are empty.
int ka_resample(const float *in, int64_t frames, int channels, int in_rate, int out_rate,
                ka_audio *out);

// Frees a->samples and sets it to NULL, a->frames to 0. Safe on a zeroed or already freed struct.
void ka_free(ka_audio *a);

// The FFmpeg libraries in use (run-time versions), e.g.
// "libavformat 59.27.100, libavcodec 59.37.100, libswresample 4.7.100, libavutil 57.28.100",
// or a sentence saying FFmpeg is not available. A static string; never NULL.
const char *ka_version(void);

#endif

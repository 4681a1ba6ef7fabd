// See kv_video.h for why this file exists: the FFmpeg open -> index -> seek -> decode -> RGB loop
// (and a small encoder), kept on the C side so that Swift sees only plain types, a status code and
// a message. Written after ka_audio.c (the audio sibling): same reader, same quiet FFmpeg.
// fseeko/ftello/fileno are POSIX, hidden by a strict -std=c11 on glibc; macOS declares them anyway.
#if !defined(__APPLE__) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#define _FILE_OFFSET_BITS 64
#include "kv_video.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<libavformat/avformat.h>) && __has_include(<libavcodec/avcodec.h>) && \
    __has_include(<libswscale/swscale.h>) && __has_include(<libavutil/opt.h>)
#define KVID_HAVE_HEADERS 1
#endif
#endif

#if defined(KVID_HAVE_HEADERS)
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
// The same floor as ka_audio.c: FFmpeg 5.1 (libavcodec 59.24 and later).
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 24, 100) && \
    LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(59, 24, 100) && \
    LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(59, 16, 100) && \
    LIBSWSCALE_VERSION_INT >= AV_VERSION_INT(6, 4, 100)
#define KVID_HAVE_FFMPEG 1
#endif
#endif

static int kvid_fail(kvid_info *info, int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(info->message, sizeof(info->message), format, args);
    va_end(args);
    return status;
}

static void kvid_reset(kvid_info *info) { memset(info, 0, sizeof(*info)); }

// Appends "; text" (or text, to an empty message), cut at the buffer's end.
static void kvid_append(kvid_info *info, const char *format, ...) {
    size_t used = strlen(info->message);
    if (used > 0 && used + 2 < sizeof(info->message)) {
        memcpy(info->message + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof(info->message)) return;
    va_list args;
    va_start(args, format);
    vsnprintf(info->message + used, sizeof(info->message) - used, format, args);
    va_end(args);
}

#if !defined(KVID_HAVE_FFMPEG)

// MARK: Stubs (built without FFmpeg 5.1+)

#define KVID_NOT_AVAILABLE_TEXT "FFmpeg is not available: Kosmos was built without the FFmpeg 5.1+ " \
    "headers (libavformat, libavcodec, libswscale, libavutil)"

const char *kvid_version(void) { return KVID_NOT_AVAILABLE_TEXT; }

static int kvid_stub(kvid_info *info) {
    if (info == NULL) return KVID_NOT_AVAILABLE;
    kvid_reset(info);
    return kvid_fail(info, KVID_NOT_AVAILABLE, "%s", KVID_NOT_AVAILABLE_TEXT);
}

int kvid_open_file(const char *path, int64_t max_pixels, int64_t max_frames, kvid_info *info,
                   kvid_video **out) {
    (void)path; (void)max_pixels; (void)max_frames;
    if (out != NULL) *out = NULL;
    return kvid_stub(info);
}

int kvid_open_memory(const uint8_t *data, size_t size, int64_t max_pixels, int64_t max_frames,
                     kvid_info *info, kvid_video **out) {
    (void)data; (void)size; (void)max_pixels; (void)max_frames;
    if (out != NULL) *out = NULL;
    return kvid_stub(info);
}

int kvid_frame_times(kvid_video *v, double *seconds, int64_t count) {
    (void)v; (void)seconds; (void)count;
    return KVID_NOT_AVAILABLE;
}

int kvid_decode_frames(kvid_video *v, const int64_t *indices, int count, uint8_t *rgb,
                       double *timestamps, kvid_info *info) {
    (void)v; (void)indices; (void)count; (void)rgb; (void)timestamps;
    return kvid_stub(info);
}

void kvid_close(kvid_video *v) { (void)v; }

int kvid_encode_file(const char *path, const char *format, const uint8_t *rgb, int frames,
                     int width, int height, int fps, kvid_info *info) {
    (void)path; (void)format; (void)rgb; (void)frames; (void)width; (void)height; (void)fps;
    return kvid_stub(info);
}

int kvid_can_encode(const char *format) {
    (void)format;
    return KVID_NOT_AVAILABLE;
}

#else

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    KVID_IO_BUFFER = 32768,        // AVIOContext buffer
    KVID_MAX_ERROR_LOOP = 1024,    // consecutive receive errors without new input: give up
    KVID_THREADS_FROM = 640 * 480, // decoders of frames at least this large use FFmpeg's threads
};

// Decode positions (kvid_video.pos) that are not a frame index.
#define KVID_POS_START ((int64_t)-1)    // just (re)opened: nothing decoded yet, at the start
#define KVID_POS_UNKNOWN ((int64_t)-2)  // just sought: nothing decoded since

// MARK: One-time setup

static pthread_once_t kvid_once = PTHREAD_ONCE_INIT;
static char kvid_version_text[160];

static void kvid_init(void) {
    // Only the level: the default callback then prints nothing. No callback of our own, so
    // ka_audio.c's (which routes error lines of its own decodes) is never replaced.
    av_log_set_level(AV_LOG_QUIET);
    unsigned f = avformat_version(), c = avcodec_version(), s = swscale_version(),
             u = avutil_version();
    snprintf(kvid_version_text, sizeof(kvid_version_text),
             "libavformat %u.%u.%u, libavcodec %u.%u.%u, libswscale %u.%u.%u, libavutil %u.%u.%u",
             AV_VERSION_MAJOR(f), AV_VERSION_MINOR(f), AV_VERSION_MICRO(f),
             AV_VERSION_MAJOR(c), AV_VERSION_MINOR(c), AV_VERSION_MICRO(c),
             AV_VERSION_MAJOR(s), AV_VERSION_MINOR(s), AV_VERSION_MICRO(s),
             AV_VERSION_MAJOR(u), AV_VERSION_MINOR(u), AV_VERSION_MICRO(u));
}

static void kvid_init_once(void) { pthread_once(&kvid_once, kvid_init); }

const char *kvid_version(void) {
    kvid_init_once();
    return kvid_version_text;
}

static void kvid_error_text(int err, char *buffer, size_t size) {
    if (av_strerror(err, buffer, size) < 0) snprintf(buffer, size, "error %d", err);
}

// av_frame_get_buffer, with every byte zeroed (also the row and end padding, which swscale's SIMD
// code reads and some encoders see, e.g. the unused byte of bgr0): no uninitialised memory is
// ever read, and encoded output cannot depend on it.
static int kvid_frame_buffer(AVFrame *frame, int format, int width, int height) {
    frame->format = format;
    frame->width = width;
    frame->height = height;
    int r = av_frame_get_buffer(frame, 0);
    if (r < 0) return r;
    for (int i = 0; i < AV_NUM_DATA_POINTERS && frame->buf[i] != NULL; i++) {
        memset(frame->buf[i]->data, 0, frame->buf[i]->size);
    }
    return 0;
}

// MARK: Input (our own reader for both files and memory)

typedef struct {
    const uint8_t *data;   // memory input
    size_t size;
    size_t pos;
    FILE *file;            // file input
    int64_t file_size;     // -1 when unknown (not a regular file)
} kvid_source;

static int kvid_read(void *opaque, uint8_t *buf, int buf_size) {
    kvid_source *s = (kvid_source *)opaque;
    if (buf_size <= 0) return 0;
    if (s->file != NULL) {
        size_t n = fread(buf, 1, (size_t)buf_size, s->file);
        if (n == 0) return ferror(s->file) ? AVERROR(EIO) : AVERROR_EOF;
        return (int)n;
    }
    if (s->pos >= s->size) return AVERROR_EOF;
    size_t n = s->size - s->pos;
    if (n > (size_t)buf_size) n = (size_t)buf_size;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (int)n;
}

static int64_t kvid_seek_source(void *opaque, int64_t offset, int whence) {
    kvid_source *s = (kvid_source *)opaque;
    int64_t size = s->file != NULL ? s->file_size : (int64_t)s->size;
    int64_t base;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return size >= 0 ? size : AVERROR(ENOSYS);
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR:
        if (s->file != NULL) {
            base = (int64_t)ftello(s->file);
            if (base < 0) return AVERROR(errno);
        } else {
            base = (int64_t)s->pos;
        }
        break;
    case SEEK_END:
        if (size < 0) return AVERROR(ENOSYS);
        base = size;
        break;
    default: return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) return AVERROR(EINVAL);
    int64_t target = base + offset;
    if (s->file != NULL) {
        if (fseeko(s->file, (off_t)target, SEEK_SET) != 0) return AVERROR(errno);
    } else {
        s->pos = (uint64_t)target > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)target;
    }
    return target;
}

static int kvid_rewind_source(kvid_source *s) {
    if (s->file != NULL) {
        clearerr(s->file);
        return fseeko(s->file, 0, SEEK_SET) == 0 ? 0 : AVERROR(errno);
    }
    s->pos = 0;
    return 0;
}

// Demuxers that open further files (playlists, concat scripts, image sequences, MP4 drefs) get
// nothing: we read the one input we were given.
static int kvid_io_open_refused(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                                AVDictionary **options) {
    (void)s; (void)pb; (void)url; (void)flags; (void)options;
    return AVERROR(EPERM);
}

// MARK: The open video

typedef struct {
    int64_t pts;     // AV_NOPTS_VALUE when the packet has none
    int64_t ts;      // pts, else dts, else AV_NOPTS_VALUE
    int64_t order;   // position in the file (tie-break: qsort is not stable)
    int key;
} kvid_entry;

struct kvid_video {
    pthread_mutex_t lock;
    kvid_source src;
    char *name_hint;             // the path (probing hint), NULL for memory
    int64_t max_pixels;          // as given (<= 0: none)

    AVIOContext *pb;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;                  // index of the video stream
    AVRational time_base;        // of the stream
    enum AVCodecID codec_id;
    AVPacket *pkt;
    AVFrame *frame;              // the picture just decoded
    AVFrame *last;               // the last picture decoded since the last seek/restart (or empty)

    AVFrame *rgb;                // swscale's output (padded: swscale may write past a row's end),
                                 //   copied row by row into the caller's buffer
    struct SwsContext *sws;      // cached for one input size/format/colorspace/range
    int sws_width, sws_height, sws_format, sws_colorspace, sws_full_range;

    int width, height;           // of the stream: every picture is returned at this size
    int64_t count;               // frames
    int64_t *pts;                // indexed: frame i's pts, ascending; unindexed: sorted packet
                                 //   timestamps, or NULL when some packet has none
    int64_t *key_before;         // the last keyframe index <= i, or -1 (indexed only)
    int indexed;
    double fps;
    double start_seconds;

    // Decoder position.
    int64_t pos;                 // last frame index decoded, or KVID_POS_START / KVID_POS_UNKNOWN
    int64_t sequential;          // unindexed: pictures decoded since the last (re)open
    int need_reposition;         // the demuxer/decoder are at the end (or broken): seek or restart
    int seek_margin;             // seek this many keyframes before the one wanted (grows when
                                 //   seeks land too late, up to KVID_SEEK_RETRIES)
    int draining;                // the decoder was sent the flush packet
    int decoder_eof;             // ... and has nothing more

    // Per-call counters of kvid_decode_frames.
    int64_t call_decoded;
    int call_seeks;
    int call_substituted;
    int call_errors;
    char call_error_text[120];   // the first decode error of the call

    kvid_info info;              // what the open learnt
};

static double kvid_seconds(int64_t ts, AVRational tb) {
    if (tb.den == 0) return 0.0;
    // Exact integer product when it fits in a double's mantissa: then one correctly rounded
    // division, the same value as Python's float(Fraction(pts) * time_base) (PyAV's frame.time).
    int64_t limit = (INT64_C(1) << 53) / (tb.num != 0 ? llabs((long long)tb.num) : 1);
    if (ts > -limit && ts < limit) return (double)(ts * (int64_t)tb.num) / (double)tb.den;
    return (double)ts * (double)tb.num / (double)tb.den;
}

static void kvid_close_demuxer(kvid_video *v) {
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);   // custom I/O: leaves pb to us
    if (v->pb != NULL) {
        av_freep(&v->pb->buffer);    // may no longer be our buffer: libavformat can reallocate it
        avio_context_free(&v->pb);
    }
}

// The first video stream that is not an attached picture (cover art), or -1.
static int kvid_first_video(const AVFormatContext *fmt) {
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
            !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
            return (int)i;
        }
    }
    return -1;
}

static int kvid_check_size(kvid_video *v, kvid_info *info, int width, int height, const char *who) {
    if (width < 1 || height < 1) {
        return kvid_fail(info, KVID_CORRUPT, "%s states a frame size of %dx%d", who, width, height);
    }
    if (width > KVID_MAX_DIMENSION || height > KVID_MAX_DIMENSION) {
        return kvid_fail(info, KVID_TOO_MANY_PIXELS, "%s states %dx%d pixels (the limit is %d "
                         "per side)", who, width, height, KVID_MAX_DIMENSION);
    }
    if (v->max_pixels > 0 && (int64_t)width * height > v->max_pixels) {
        return kvid_fail(info, KVID_TOO_MANY_PIXELS, "%dx%d = %lld pixels, more than the limit of "
                         "%lld", width, height, (long long)width * height, (long long)v->max_pixels);
    }
    return KVID_OK;
}

// What decoders (also the ones avformat_find_stream_info runs) may allocate per picture. Looser
// than our own limit: FFmpeg checks the width rounded up to its stride alignment.
static int64_t kvid_decoder_pixel_limit(const kvid_video *v) {
    int64_t limit = (int64_t)KVID_MAX_DIMENSION * KVID_MAX_DIMENSION;
    if (v->max_pixels > 0 && v->max_pixels < limit) limit = v->max_pixels;
    return limit * 2 + (int64_t)64 * KVID_MAX_DIMENSION;
}

// Opens (first) or reopens (a restart from the beginning) the demuxer and the decoder.
static int kvid_open_demuxer(kvid_video *v, kvid_info *info, int first) {
    char text[96];
    int r = kvid_rewind_source(&v->src);
    if (r < 0) {
        kvid_error_text(r, text, sizeof(text));
        return kvid_fail(info, KVID_OPEN_FAILED, "cannot rewind the input: %s", text);
    }
    uint8_t *io_buffer = (uint8_t *)av_malloc(KVID_IO_BUFFER);
    if (io_buffer == NULL) return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the reader");
    v->pb = avio_alloc_context(io_buffer, KVID_IO_BUFFER, 0, &v->src, kvid_read, NULL,
                               kvid_seek_source);
    if (v->pb == NULL) {
        av_free(io_buffer);
        return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the reader");
    }
    v->fmt = avformat_alloc_context();
    if (v->fmt == NULL) return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the demuxer");
    v->fmt->pb = v->pb;
    v->fmt->io_open = kvid_io_open_refused;
    // No URL protocol at all for anything a demuxer might try to open by itself.
    AVDictionary *options = NULL;
    av_dict_set(&options, "protocol_whitelist", "none", 0);
    r = avformat_open_input(&v->fmt, v->name_hint != NULL ? v->name_hint : "", NULL, &options);
    av_dict_free(&options);
    if (r < 0) {   // v->fmt has been freed and set to NULL
        kvid_error_text(r, text, sizeof(text));
        return kvid_fail(info, KVID_OPEN_FAILED, "not a recognised media file: %s", text);
    }
    AVFormatContext *fmt = v->fmt;
    // Packets without a pts (B-frames in AVI) get one from the decode order of the next ones,
    // as PyAV's newer FFmpeg gives them anyway: such files are indexed too.
    fmt->flags |= AVFMT_FLAG_GENPTS;
    if (first) snprintf(info->container, sizeof(info->container), "%s", fmt->iformat->name);

    // A size the container states already is checked before any probing decode.
    int index = kvid_first_video(fmt);
    if (index >= 0) {
        const AVCodecParameters *par = fmt->streams[index]->codecpar;
        if ((par->width > 0 && par->height > 0) || par->width > KVID_MAX_DIMENSION ||
            par->height > KVID_MAX_DIMENSION) {   // a missing side may still be found by probing
            int status = kvid_check_size(v, info, par->width > 0 ? par->width : 1,
                                         par->height > 0 ? par->height : 1, "the container");
            if (status != KVID_OK) return status;
        }
    }

    // The decoders libavformat opens to find the parameters get the pixel limit too.
    unsigned streams = fmt->nb_streams;
    AVDictionary **stream_options = NULL;
    if (streams > 0) {
        stream_options = (AVDictionary **)av_calloc(streams, sizeof(*stream_options));
        if (stream_options == NULL) return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate options");
        for (unsigned i = 0; i < streams; i++) {
            av_dict_set_int(&stream_options[i], "max_pixels", kvid_decoder_pixel_limit(v), 0);
            av_dict_set(&stream_options[i], "threads", "1", 0);
        }
    }
    r = avformat_find_stream_info(fmt, stream_options);
    for (unsigned i = 0; i < streams; i++) av_dict_free(&stream_options[i]);
    av_free(stream_options);
    if (r < 0) {
        kvid_error_text(r, text, sizeof(text));
        return kvid_fail(info, KVID_CORRUPT, "cannot read the stream parameters: %s", text);
    }

    index = kvid_first_video(fmt);
    if (index < 0) {
        return kvid_fail(info, KVID_NO_VIDEO, "no video stream in the %s file (%u stream%s)",
                         fmt->iformat->name, fmt->nb_streams, fmt->nb_streams == 1 ? "" : "s");
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        if ((int)i != index) fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    AVStream *st = fmt->streams[index];
    AVCodecParameters *par = st->codecpar;
    if (first) {
        snprintf(info->codec, sizeof(info->codec), "%s", avcodec_get_name(par->codec_id));
        info->width = par->width;
        info->height = par->height;
    }
    int status = kvid_check_size(v, info, par->width, par->height, "the stream");
    if (status != KVID_OK) return status;
    if (st->time_base.num <= 0 || st->time_base.den <= 0) {
        return kvid_fail(info, KVID_CORRUPT, "the stream has no valid time base (%d/%d)",
                         st->time_base.num, st->time_base.den);
    }
    if (first) {
        v->stream = index;
        v->codec_id = par->codec_id;
        v->width = par->width;
        v->height = par->height;
        v->time_base = st->time_base;
    } else if (index != v->stream || par->codec_id != v->codec_id || par->width != v->width ||
               par->height != v->height || av_cmp_q(st->time_base, v->time_base) != 0) {
        return kvid_fail(info, KVID_CORRUPT, "the input reads differently when reopened");
    }

    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (codec == NULL) {
        return kvid_fail(info, KVID_UNSUPPORTED_CODEC, "no decoder for codec %s in this FFmpeg",
                         avcodec_get_name(par->codec_id));
    }
    v->dec = avcodec_alloc_context3(codec);
    if (v->dec == NULL) return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the decoder");
    if ((r = avcodec_parameters_to_context(v->dec, par)) < 0) {
        kvid_error_text(r, text, sizeof(text));
        return kvid_fail(info, KVID_CORRUPT, "bad codec parameters: %s", text);
    }
    v->dec->pkt_timebase = st->time_base;
    v->dec->max_pixels = kvid_decoder_pixel_limit(v);
    // Threads only pay for large pictures; the output is the same either way.
    v->dec->thread_count = (int64_t)par->width * par->height >= KVID_THREADS_FROM ? 0 : 1;
    if ((r = avcodec_open2(v->dec, codec, NULL)) < 0) {
        kvid_error_text(r, text, sizeof(text));
        int bad_data = r == AVERROR_INVALIDDATA || r == AVERROR(EINVAL) || r == AVERROR(ENOMEM);
        return kvid_fail(info, bad_data ? KVID_CORRUPT : KVID_UNSUPPORTED_CODEC,
                         "the %s decoder rejects the stream: %s", codec->name, text);
    }
    return KVID_OK;
}

// "12 frames / 2.000 s", "2.000 s" or "12 frames": what the container states.
static void kvid_stated_text(int64_t frames, double seconds, char *buffer, size_t size) {
    const char *plural = frames == 1 ? "" : "s";
    if (frames > 0 && seconds > 0.0) {
        snprintf(buffer, size, "%lld frame%s / %.3f s", (long long)frames, plural, seconds);
    } else if (frames > 0) {
        snprintf(buffer, size, "%lld frame%s", (long long)frames, plural);
    } else {
        snprintf(buffer, size, "%.3f s", seconds);
    }
}

static int kvid_compare_pts(const void *a, const void *b) {
    const kvid_entry *x = (const kvid_entry *)a, *y = (const kvid_entry *)b;
    if (x->pts != y->pts) return x->pts < y->pts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int kvid_compare_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

// The demux pass: every packet of the video stream, nothing decoded. Builds the index.
static int kvid_index(kvid_video *v, int64_t max_frames, kvid_info *info) {
    char text[96];
    AVFormatContext *fmt = v->fmt;
    AVStream *st = fmt->streams[v->stream];
    kvid_entry *entries = NULL;
    size_t cap = 0;
    int64_t count = 0, stream_packets = 0;
    int64_t max_ts = AV_NOPTS_VALUE, end_ts = AV_NOPTS_VALUE;
    int missing_pts = 0, missing_ts = 0, corrupt_packets = 0, read_error = 0, discarded = 0;
    int status = KVID_OK;
    // Packets of our stream that are not counted (empty, discard) cannot go on for ever either.
    int64_t packet_limit = max_frames > 0 && max_frames < INT64_MAX / 8 - 4096
        ? max_frames * 8 + 4096 : INT64_MAX;
    for (;;) {
        int r = av_read_frame(fmt, v->pkt);
        if (r < 0) {
            if (r != AVERROR_EOF) read_error = r;
            break;
        }
        AVPacket *pkt = v->pkt;
        if (pkt->stream_index == v->stream) {
            if (++stream_packets > packet_limit) {
                status = kvid_fail(info, KVID_TOO_MANY_FRAMES, "more than %lld packets in the "
                                   "video stream", (long long)packet_limit);
            } else if (pkt->size > 0 && !(pkt->flags & AV_PKT_FLAG_DISCARD)) {
                if (max_frames > 0 && count >= max_frames) {
                    status = kvid_fail(info, KVID_TOO_MANY_FRAMES, "more than %lld frames",
                                       (long long)max_frames);
                } else if ((size_t)count >= cap) {
                    size_t grown = cap > 0 ? cap * 2 : 1024;
                    if (max_frames > 0 && grown > (uint64_t)max_frames) grown = (size_t)max_frames;
                    if (grown <= cap) grown = cap + 1;
                    kvid_entry *e = grown <= SIZE_MAX / sizeof(kvid_entry)
                        ? (kvid_entry *)realloc(entries, grown * sizeof(kvid_entry)) : NULL;
                    if (e == NULL) {
                        status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot index %zu frames", grown);
                    } else {
                        entries = e;
                        cap = grown;
                    }
                }
                if (status == KVID_OK) {
                    kvid_entry *e = &entries[count];
                    e->pts = pkt->pts;
                    e->ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
                    e->order = count;
                    e->key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
                    if (e->pts == AV_NOPTS_VALUE) missing_pts = 1;
                    if (e->ts == AV_NOPTS_VALUE) {
                        missing_ts = 1;
                    } else {
                        int64_t end = e->ts;
                        if (pkt->duration > 0 && end < INT64_MAX - pkt->duration) end += pkt->duration;
                        if (max_ts == AV_NOPTS_VALUE || e->ts > max_ts) max_ts = e->ts;
                        if (end_ts == AV_NOPTS_VALUE || end > end_ts) end_ts = end;
                    }
                    if (pkt->flags & AV_PKT_FLAG_CORRUPT) corrupt_packets++;
                    count++;
                }
            } else if (pkt->flags & AV_PKT_FLAG_DISCARD) {
                discarded = 1;
            }
        }
        av_packet_unref(pkt);
        if (status != KVID_OK) break;
    }
    if (status != KVID_OK) {
        free(entries);
        return status;
    }
    info->ignored_errors = corrupt_packets + (read_error != 0);
    if (read_error != 0) {
        kvid_error_text(read_error, text, sizeof(text));
        kvid_append(info, "the demux pass stopped after %lld frame%s on a read error (truncated or "
                    "damaged file?): %s", (long long)count, count == 1 ? "" : "s", text);
    }
    if (corrupt_packets > 0) {
        kvid_append(info, "%d packet%s flagged corrupt by the demuxer", corrupt_packets,
                    corrupt_packets == 1 ? "" : "s");
    }
    // What the container states, to tell a cut file from a complete one: the stream's duration,
    // else the file's when the video is its only stream (not a guess from the bitrate), and the
    // stream's frame count when no packet was discarded (an MP4 edit list counts those).
    double stated_seconds = 0.0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) {
        stated_seconds = kvid_seconds(st->duration, v->time_base);
    } else if (fmt->nb_streams == 1 && fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0 &&
               fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
        stated_seconds = (double)fmt->duration / AV_TIME_BASE;
    }
    int64_t stated_frames = !discarded && st->nb_frames > 0 ? st->nb_frames : 0;
    if (count == 0) {
        free(entries);
        if (read_error != 0) {
            return kvid_fail(info, KVID_CORRUPT, "no frame could be read: %s", text);
        }
        if (stated_seconds > 0.0 || stated_frames > 0) {
            kvid_stated_text(stated_frames, stated_seconds, text, sizeof(text));
            return kvid_fail(info, KVID_CORRUPT, "no frame could be read, but the container states "
                             "%s (a file cut before its first frame, or damaged)", text);
        }
        return kvid_fail(info, KVID_EMPTY, "the %s stream has no frames", info->codec);
    }

    // Display order.
    int indexed = !missing_pts;
    if (indexed) {
        qsort(entries, (size_t)count, sizeof(kvid_entry), kvid_compare_pts);
        for (int64_t i = 1; i < count; i++) {
            if (entries[i].pts == entries[i - 1].pts) { indexed = 0; break; }
        }
    }
    v->pts = (int64_t *)malloc((size_t)count * sizeof(int64_t));
    v->key_before = (int64_t *)malloc((size_t)count * sizeof(int64_t));
    if (v->pts == NULL || v->key_before == NULL) {
        free(entries);
        return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot index %lld frames", (long long)count);
    }
    int64_t keyframes = 0, last_key = -1;
    for (int64_t i = 0; i < count; i++) {
        if (entries[i].key) keyframes++;
        if (indexed) {
            v->pts[i] = entries[i].pts;
            if (entries[i].key) last_key = i;
            v->key_before[i] = last_key;
        } else {
            v->pts[i] = entries[i].ts;
            v->key_before[i] = -1;
        }
    }
    free(entries);
    if (!indexed) {
        if (missing_ts) {
            free(v->pts);
            v->pts = NULL;
        } else {
            qsort(v->pts, (size_t)count, sizeof(int64_t), kvid_compare_int64);
        }
    }
    v->count = count;
    v->indexed = indexed;

    // Rate, start, duration.
    double first = v->pts != NULL ? kvid_seconds(v->pts[0], v->time_base) : 0.0;
    double last = v->pts != NULL ? kvid_seconds(v->pts[count - 1], v->time_base) : 0.0;
    double fps = 0.0;
    if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) {
        fps = av_q2d(st->avg_frame_rate);
    } else if (count >= 2 && last > first) {
        fps = (double)(count - 1) / (last - first);
    } else if (st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0) {
        fps = av_q2d(st->r_frame_rate);
    }
    if (!(fps > 0.0 && fps < 1e9)) fps = 0.0;
    double duration;
    if (max_ts != AV_NOPTS_VALUE && v->pts != NULL) {
        duration = kvid_seconds(end_ts, v->time_base) - first;
        if (end_ts == max_ts && fps > 0.0) duration += 1.0 / fps;   // the last frame has no duration
    } else {
        duration = fps > 0.0 ? (double)count / fps : 0.0;
    }
    if (!(duration >= 0.0)) duration = 0.0;
    v->fps = fps;
    v->start_seconds = first;

    // Fewer frames than stated (tolerance: 1% + 0.1 s + one frame): a file cut short. Noted, kept.
    // (Compared with the end time: some containers, FLV, state the duration from 0, not from
    // the first frame.)
    double tolerance = stated_seconds / 100 + 0.1 + (fps > 0.0 ? 1.0 / fps : 0.0);
    double covered = duration + (first > 0.0 ? first : 0.0);
    if (stated_frames > count || stated_seconds - covered > tolerance) {
        info->ignored_errors++;
        kvid_stated_text(stated_frames, stated_seconds, text, sizeof(text));
        kvid_append(info, "the stream ends after %lld frame%s (%.3f s) but the container states %s "
                    "(truncated file?)", (long long)count, count == 1 ? "" : "s", duration, text);
    }
    info->frame_count = count;
    info->keyframe_count = keyframes;
    info->fps = fps;
    info->duration_seconds = duration;
    info->start_seconds = first;
    info->indexed = indexed;
    return KVID_OK;
}

static void kvid_free(kvid_video *v) {
    kvid_close_demuxer(v);
    sws_freeContext(v->sws);
    av_packet_free(&v->pkt);
    av_frame_free(&v->frame);
    av_frame_free(&v->last);
    av_frame_free(&v->rgb);
    free(v->pts);
    free(v->key_before);
    free(v->name_hint);
    if (v->src.file != NULL) fclose(v->src.file);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

// Takes ownership of src (closes its file on failure).
static int kvid_open(kvid_source src, const char *name_hint, int64_t max_pixels, int64_t max_frames,
                     kvid_info *info, kvid_video **out) {
    kvid_video *v = (kvid_video *)calloc(1, sizeof(kvid_video));
    if (v == NULL || pthread_mutex_init(&v->lock, NULL) != 0) {
        free(v);
        if (src.file != NULL) fclose(src.file);
        return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the video");
    }
    v->src = src;
    v->max_pixels = max_pixels;
    int status = KVID_OK;
    if (name_hint != NULL && (v->name_hint = strdup(name_hint)) == NULL) {
        status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the video");
    }
    if (status == KVID_OK) status = kvid_open_demuxer(v, info, 1);
    if (status == KVID_OK) {
        v->pkt = av_packet_alloc();
        v->frame = av_frame_alloc();
        v->last = av_frame_alloc();
        if (v->pkt == NULL || v->frame == NULL || v->last == NULL) {
            status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate packets/frames");
        }
    }
    if (status == KVID_OK) status = kvid_index(v, max_frames, info);
    if (status != KVID_OK) {
        kvid_free(v);
        return status;
    }
    v->need_reposition = 1;   // the demuxer is at the end after the pass
    v->pos = KVID_POS_UNKNOWN;
    v->info = *info;
    *out = v;
    return KVID_OK;
}

int kvid_open_file(const char *path, int64_t max_pixels, int64_t max_frames, kvid_info *info,
                   kvid_video **out) {
    kvid_info local;
    if (info == NULL) info = &local;
    kvid_reset(info);
    if (out == NULL) return kvid_fail(info, KVID_BAD_ARGUMENT, "no output pointer");
    *out = NULL;
    if (path == NULL) return kvid_fail(info, KVID_BAD_ARGUMENT, "no path");
    kvid_init_once();
    char text[96];
    kvid_source src;
    memset(&src, 0, sizeof(src));
    src.file = fopen(path, "rb");
    if (src.file == NULL) {
        kvid_error_text(AVERROR(errno), text, sizeof(text));
        return kvid_fail(info, KVID_OPEN_FAILED, "cannot open %s: %s", path, text);
    }
    struct stat st;
    if (fstat(fileno(src.file), &st) != 0) {
        kvid_error_text(AVERROR(errno), text, sizeof(text));
        fclose(src.file);
        return kvid_fail(info, KVID_OPEN_FAILED, "cannot stat %s: %s", path, text);
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(src.file);
        return kvid_fail(info, KVID_OPEN_FAILED, "%s is a directory", path);
    }
    src.file_size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    if (src.file_size == 0) {
        fclose(src.file);
        return kvid_fail(info, KVID_OPEN_FAILED, "empty file (0 bytes)");
    }
    return kvid_open(src, path, max_pixels, max_frames, info, out);
}

int kvid_open_memory(const uint8_t *data, size_t size, int64_t max_pixels, int64_t max_frames,
                     kvid_info *info, kvid_video **out) {
    kvid_info local;
    if (info == NULL) info = &local;
    kvid_reset(info);
    if (out == NULL) return kvid_fail(info, KVID_BAD_ARGUMENT, "no output pointer");
    *out = NULL;
    if (data == NULL && size > 0) return kvid_fail(info, KVID_BAD_ARGUMENT, "no data");
    if (size == 0) return kvid_fail(info, KVID_OPEN_FAILED, "empty input (0 bytes)");
    kvid_init_once();
    kvid_source src;
    memset(&src, 0, sizeof(src));
    src.data = data;
    src.size = size;
    src.file_size = -1;
    return kvid_open(src, NULL, max_pixels, max_frames, info, out);
}

void kvid_close(kvid_video *v) {
    if (v != NULL) kvid_free(v);
}

int kvid_frame_times(kvid_video *v, double *seconds, int64_t count) {
    if (v == NULL || (seconds == NULL && count > 0) || count < 0) return KVID_BAD_ARGUMENT;
    pthread_mutex_lock(&v->lock);
    int status = KVID_OK;
    if (count > v->count) {
        status = KVID_BAD_ARGUMENT;
    } else {
        for (int64_t i = 0; i < count; i++) {
            seconds[i] = v->pts != NULL ? kvid_seconds(v->pts[i], v->time_base)
                : v->start_seconds + (v->fps > 0.0 ? (double)i / v->fps : 0.0);
        }
    }
    pthread_mutex_unlock(&v->lock);
    return status;
}

// MARK: Decoding

static void kvid_note_error(kvid_video *v, const char *what, int err) {
    if (v->call_errors++ == 0) {
        char text[96];
        if (err != 0) kvid_error_text(err, text, sizeof(text)); else text[0] = 0;
        snprintf(v->call_error_text, sizeof(v->call_error_text), "%s%s%s", what,
                 err != 0 ? ": " : "", text);
    }
}

static void kvid_reset_decoder_state(kvid_video *v, int64_t pos) {
    av_frame_unref(v->frame);
    av_frame_unref(v->last);
    v->pos = pos;
    v->sequential = 0;
    v->draining = 0;
    v->decoder_eof = 0;
    v->need_reposition = 0;
}

// Reopens the input and decodes from its start (the fallback for everything seeking cannot do).
static int kvid_restart(kvid_video *v, kvid_info *info) {
    v->call_seeks++;
    kvid_close_demuxer(v);
    v->need_reposition = 1;
    int status = kvid_open_demuxer(v, info, 0);
    if (status != KVID_OK) {
        kvid_close_demuxer(v);   // the next call tries again
        return status;
    }
    kvid_reset_decoder_state(v, KVID_POS_START);
    return KVID_OK;
}

// Seeks to the keyframe `key` (a frame index) or, if the container cannot, restarts.
// *sought is 1 after a real seek (the landing point must be checked), 0 after a restart.
static int kvid_seek(kvid_video *v, int64_t key, kvid_info *info, int *sought) {
    *sought = 0;
    if (v->fmt == NULL || !v->indexed) return kvid_restart(v, info);
    if (key < 0) key = 0;
    int r = av_seek_frame(v->fmt, v->stream, v->pts[key], AVSEEK_FLAG_BACKWARD);
    if (r < 0) return kvid_restart(v, info);
    v->call_seeks++;
    avcodec_flush_buffers(v->dec);
    kvid_reset_decoder_state(v, KVID_POS_UNKNOWN);
    *sought = 1;
    return KVID_OK;
}

// The next picture in v->frame: 1, or 0 at the end of the stream (the decoder is drained).
static int kvid_next_picture(kvid_video *v) {
    int errors_in_a_row = 0;
    if (v->fmt == NULL || v->dec == NULL) return 0;
    while (!v->decoder_eof) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) {
            v->call_decoded++;
            v->sequential++;
            return 1;
        }
        if (r == AVERROR_EOF) break;
        if (r != AVERROR(EAGAIN)) {
            kvid_note_error(v, "decode error", r);
            if (++errors_in_a_row > KVID_MAX_ERROR_LOOP) break;
            continue;
        }
        if (v->draining) break;   // EAGAIN after the flush packet: not expected; the end
        r = av_read_frame(v->fmt, v->pkt);
        if (r < 0) {
            if (r != AVERROR_EOF) kvid_note_error(v, "read error", r);
            avcodec_send_packet(v->dec, NULL);
            v->draining = 1;
            continue;
        }
        errors_in_a_row = 0;
        if (v->pkt->stream_index == v->stream && v->pkt->size > 0) {
            r = avcodec_send_packet(v->dec, v->pkt);
            if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_EOF) kvid_note_error(v, "decode error", r);
        }
        av_packet_unref(v->pkt);
    }
    v->decoder_eof = 1;
    v->need_reposition = 1;
    return 0;
}

// The frame index of the picture in v->frame, or -1 if it is not one of ours (unknown pts).
static int64_t kvid_picture_index(const kvid_video *v) {
    if (!v->indexed) return v->sequential - 1 < v->count ? v->sequential - 1 : -1;
    int64_t ts = v->frame->pts != AV_NOPTS_VALUE ? v->frame->pts : v->frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) return -1;
    int64_t lo = 0, hi = v->count - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->pts[mid] == ts) return mid;
        if (v->pts[mid] < ts) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

static double kvid_picture_time(const kvid_video *v, const AVFrame *f, int64_t index) {
    if (v->indexed) return kvid_seconds(v->pts[index], v->time_base);
    if (f->best_effort_timestamp != AV_NOPTS_VALUE) return kvid_seconds(f->best_effort_timestamp, v->time_base);
    return v->start_seconds + (v->fps > 0.0 ? (double)index / v->fps : 0.0);
}

static int kvid_is_full_range_format(enum AVPixelFormat format) {
    switch (format) {
    case AV_PIX_FMT_YUVJ420P: case AV_PIX_FMT_YUVJ422P: case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P: case AV_PIX_FMT_YUVJ411P:
        return 1;
    default:
        return 0;
    }
}

// Converts picture f to RGB24 at the stream's size into dst (see "Conversion to RGB24").
static int kvid_convert(kvid_video *v, const AVFrame *f, uint8_t *dst, kvid_info *info) {
    enum AVPixelFormat format = (enum AVPixelFormat)f->format;
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(format);
    if (f->width < 1 || f->height < 1 || desc == NULL) {
        return kvid_fail(info, KVID_CORRUPT, "the decoder returned an invalid picture");
    }
    if (f->width > KVID_MAX_DIMENSION || f->height > KVID_MAX_DIMENSION) {
        return kvid_fail(info, KVID_TOO_MANY_PIXELS, "a decoded picture has %dx%d pixels",
                         f->width, f->height);
    }
    int full = f->color_range == AVCOL_RANGE_JPEG || kvid_is_full_range_format(format);
    int colorspace = (int)f->colorspace;
    if (v->sws == NULL || v->sws_width != f->width || v->sws_height != f->height ||
        v->sws_format != (int)format || v->sws_colorspace != colorspace || v->sws_full_range != full) {
        sws_freeContext(v->sws);
        v->sws = NULL;
        if (!sws_isSupportedInput(format)) {
            return kvid_fail(info, KVID_UNSUPPORTED_CODEC, "libswscale cannot convert pixel "
                             "format %s", desc->name);
        }
        v->sws = sws_getContext(f->width, f->height, format, v->width, v->height, AV_PIX_FMT_RGB24,
                                SWS_BILINEAR, NULL, NULL, NULL);
        if (v->sws == NULL) {
            return kvid_fail(info, KVID_UNSUPPORTED_CODEC, "libswscale cannot convert %s %dx%d "
                             "to rgb24 %dx%d", desc->name, f->width, f->height, v->width, v->height);
        }
        if (!(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL))) {
            int *inv_table, *table, src_range, dst_range, brightness, contrast, saturation;
            if (sws_getColorspaceDetails(v->sws, &inv_table, &src_range, &table, &dst_range,
                                         &brightness, &contrast, &saturation) >= 0) {
                sws_setColorspaceDetails(v->sws, sws_getCoefficients(colorspace), full, table,
                                         dst_range, brightness, contrast, saturation);
            }
        }
        v->sws_width = f->width;
        v->sws_height = f->height;
        v->sws_format = (int)format;
        v->sws_colorspace = colorspace;
        v->sws_full_range = full;
    }
    if (v->rgb == NULL) {
        // FFmpeg's own frame layout (aligned rows, padding at the end) for swscale's SIMD code.
        v->rgb = av_frame_alloc();
        if (v->rgb == NULL) return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate a frame");
        if (kvid_frame_buffer(v->rgb, AV_PIX_FMT_RGB24, v->width, v->height) < 0) {
            av_frame_free(&v->rgb);
            return kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate a %dx%d frame", v->width,
                             v->height);
        }
    }
    int r = sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
                      v->rgb->data, v->rgb->linesize);
    if (r <= 0) return kvid_fail(info, KVID_CORRUPT, "libswscale failed to convert a picture");
    size_t row = (size_t)v->width * 3;
    for (int y = 0; y < v->height; y++) {
        memcpy(dst + (size_t)y * row, v->rgb->data[0] + (size_t)y * (size_t)v->rgb->linesize[0], row);
    }
    return KVID_OK;
}

// Stores picture f as the output frames k0..k1-1 (all the same frame).
static int kvid_store(kvid_video *v, const AVFrame *f, int64_t index, int k0, int k1, uint8_t *rgb,
                      double *timestamps, kvid_info *info) {
    size_t frame_bytes = (size_t)v->width * (size_t)v->height * 3;
    int status = kvid_convert(v, f, rgb + (size_t)k0 * frame_bytes, info);
    if (status != KVID_OK) return status;
    double t = kvid_picture_time(v, f, index);
    for (int k = k0; k < k1; k++) {
        if (k > k0) memcpy(rgb + (size_t)k * frame_bytes, rgb + (size_t)k0 * frame_bytes, frame_bytes);
        if (timestamps != NULL) timestamps[k] = t;
    }
    return KVID_OK;
}

// Whether frame w is better reached by seeking than by decoding on from the current position.
static int kvid_should_seek(const kvid_video *v, int64_t w) {
    if (v->need_reposition || v->fmt == NULL || v->pos == KVID_POS_UNKNOWN || v->pos >= w) return 1;
    if (!v->indexed) return 0;
    return v->key_before[w] > v->pos + KVID_FORWARD_LIMIT;
}

// The keyframe `back` keyframes before the last one at or before frame w (0 if there is none).
static int64_t kvid_keyframe_before(const kvid_video *v, int64_t w, int back) {
    int64_t key = v->key_before[w] >= 0 ? v->key_before[w] : 0;
    for (int b = 0; b < back && key > 0; b++) key = v->key_before[key - 1] >= 0 ? v->key_before[key - 1] : 0;
    return key;
}

static int kvid_fill(kvid_video *v, const int64_t *indices, int count, uint8_t *rgb,
                     double *timestamps, kvid_info *info) {
    int i = 0;
    while (i < count) {
        int64_t w = indices[i];
        int check_landing = 0, retries = 0, restarted = 0, status = KVID_OK;
        int64_t target = 0;
        if (kvid_should_seek(v, w)) {
            target = v->indexed ? kvid_keyframe_before(v, w, v->seek_margin) : 0;
            status = kvid_seek(v, target, info, &check_landing);
            if (status != KVID_OK) return status;
            restarted = !check_landing;
        }
        for (;;) {
            int got = kvid_next_picture(v);
            int64_t index = got ? kvid_picture_index(v) : -1;
            if (got && index < 0) {   // not one of the indexed frames
                av_frame_unref(v->frame);
                continue;
            }
            if (check_landing && (!got || index > w)) {
                // The seek landed after w (or nowhere before the end): TS/PS seek by dts to any
                // packet, and the decoder waits for the next keyframe. Retry from an earlier
                // keyframe, and go back further on later seeks in this video; at last, restart.
                av_frame_unref(v->frame);
                if (v->seek_margin < KVID_SEEK_RETRIES) v->seek_margin++;
                if (retries < KVID_SEEK_RETRIES && target > 0) {
                    retries++;
                    target = kvid_keyframe_before(v, target > 0 ? target - 1 : 0, 0);
                    status = kvid_seek(v, target, info, &check_landing);
                } else {
                    status = kvid_restart(v, info);
                    check_landing = 0;
                }
                if (status != KVID_OK) return status;
                restarted = !check_landing;
                continue;
            }
            check_landing = 0;
            if (!got) {
                // The end of the stream with frames still wanted.
                if (v->last->buf[0] == NULL && !restarted) {
                    status = kvid_restart(v, info);   // nothing decoded since we started: retry once
                    if (status != KVID_OK) return status;
                    restarted = 1;
                    continue;
                }
                if (v->last->buf[0] == NULL) {
                    return kvid_fail(info, KVID_CORRUPT, "frame %lld cannot be decoded: no picture "
                                     "decodes%s%s", (long long)w, v->call_errors > 0 ? "; " : "",
                                     v->call_errors > 0 ? v->call_error_text : "");
                }
                // Fill the rest with the last picture decoded.
                v->call_substituted += count - i;
                return kvid_store(v, v->last, v->pos, i, count, rgb, timestamps, info);
            }
            v->pos = index;
            if (index >= w) {
                int k1 = i;
                while (k1 < count && indices[k1] <= index) {
                    if (indices[k1] < index) v->call_substituted++;
                    k1++;
                }
                status = kvid_store(v, v->frame, index, i, k1, rgb, timestamps, info);
                if (status != KVID_OK) {
                    av_frame_unref(v->frame);
                    return status;
                }
                i = k1;
            }
            av_frame_unref(v->last);
            av_frame_move_ref(v->last, v->frame);
            if (i >= count) return KVID_OK;
            if (index >= w) {
                w = indices[i];
                if (kvid_should_seek(v, w)) break;   // the outer loop seeks
            }
        }
    }
    return KVID_OK;
}

int kvid_decode_frames(kvid_video *v, const int64_t *indices, int count, uint8_t *rgb,
                       double *timestamps, kvid_info *info) {
    kvid_info local;
    if (info == NULL) info = &local;
    if (v == NULL) {
        kvid_reset(info);
        return kvid_fail(info, KVID_BAD_ARGUMENT, "no video");
    }
    pthread_mutex_lock(&v->lock);
    *info = v->info;
    info->message[0] = 0;
    info->ignored_errors = 0;
    int status = KVID_OK;
    if (count < 0 || (count > 0 && (indices == NULL || rgb == NULL))) {
        status = kvid_fail(info, KVID_BAD_ARGUMENT, "bad count or NULL indices/rgb");
    }
    for (int k = 0; status == KVID_OK && k < count; k++) {
        if (indices[k] < 0 || indices[k] >= v->count) {
            status = kvid_fail(info, KVID_BAD_ARGUMENT, "index %lld is out of range (the video has "
                               "%lld frames)", (long long)indices[k], (long long)v->count);
        } else if (k > 0 && indices[k] < indices[k - 1]) {
            status = kvid_fail(info, KVID_BAD_ARGUMENT, "indices are not ascending (%lld after %lld)",
                               (long long)indices[k], (long long)indices[k - 1]);
        }
    }
    v->call_decoded = 0;
    v->call_seeks = 0;
    v->call_substituted = 0;
    v->call_errors = 0;
    v->call_error_text[0] = 0;
    if (status == KVID_OK && count > 0) {
        kvid_init_once();
        status = kvid_fill(v, indices, count, rgb, timestamps, info);
        av_frame_unref(v->frame);
    }
    info->decoded_frames = v->call_decoded;
    info->seeks = v->call_seeks;
    info->substituted_frames = v->call_substituted;
    info->ignored_errors = v->call_errors;
    if (status == KVID_OK && v->call_errors > 0) {
        snprintf(info->message, sizeof(info->message), "ignored %d decode error%s (damaged data "
                 "concealed by the decoder): %s", v->call_errors, v->call_errors == 1 ? "" : "s",
                 v->call_error_text);
    }
    pthread_mutex_unlock(&v->lock);
    return status;
}

// MARK: Encoding

typedef struct {
    const char *name;            // kvid_encode_file's format argument
    const char *muxer;
    const char *encoders[2];     // the first one present is used
    enum AVPixelFormat pix_fmt;
    int full_range;              // YUV in full range (MJPEG)
    int even;                    // 4:2:0: width and height must be even
} kvid_format;

static const kvid_format kvid_formats[] = {
    {"avi-mjpeg", "avi", {"mjpeg", NULL}, AV_PIX_FMT_YUV420P, 1, 1},
    {"mp4-h264", "mp4", {"libx264", "mpeg4"}, AV_PIX_FMT_YUV420P, 0, 1},
    {"mkv-h264", "matroska", {"libx264", "mpeg4"}, AV_PIX_FMT_YUV420P, 0, 1},
    {"webm-vp9", "webm", {"libvpx-vp9", NULL}, AV_PIX_FMT_YUV420P, 0, 1},
    {"gif", "gif", {"gif", NULL}, AV_PIX_FMT_PAL8, 0, 0},
    {"mkv-ffv1", "matroska", {"ffv1", NULL}, AV_PIX_FMT_BGR0, 0, 0},
};

static const kvid_format *kvid_find_format(const char *name) {
    if (name == NULL) return NULL;
    for (size_t i = 0; i < sizeof(kvid_formats) / sizeof(kvid_formats[0]); i++) {
        if (strcmp(kvid_formats[i].name, name) == 0) return &kvid_formats[i];
    }
    return NULL;
}

static const AVCodec *kvid_find_encoder(const kvid_format *f) {
    for (int i = 0; i < 2; i++) {
        if (f->encoders[i] == NULL) continue;
        const AVCodec *c = avcodec_find_encoder_by_name(f->encoders[i]);
        if (c != NULL) return c;
    }
    return NULL;
}

int kvid_can_encode(const char *format) {
    const kvid_format *f = kvid_find_format(format);
    if (f == NULL) return KVID_BAD_ARGUMENT;
    kvid_init_once();
    if (av_guess_format(f->muxer, NULL, NULL) == NULL || kvid_find_encoder(f) == NULL) {
        return KVID_UNSUPPORTED_CODEC;
    }
    return KVID_OK;
}

typedef struct {
    FILE *file;
    int failed;      // a write or seek failed
} kvid_sink;

#if LIBAVFORMAT_VERSION_MAJOR >= 61
static int kvid_write(void *opaque, const uint8_t *buf, int buf_size) {
#else
static int kvid_write(void *opaque, uint8_t *buf, int buf_size) {
#endif
    kvid_sink *s = (kvid_sink *)opaque;
    if (buf_size <= 0) return 0;
    if (fwrite(buf, 1, (size_t)buf_size, s->file) != (size_t)buf_size) {
        s->failed = 1;
        return AVERROR(EIO);
    }
    return buf_size;
}

static int64_t kvid_seek_sink(void *opaque, int64_t offset, int whence) {
    kvid_sink *s = (kvid_sink *)opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) {
        struct stat st;
        if (fflush(s->file) != 0 || fstat(fileno(s->file), &st) != 0) return AVERROR(errno);
        return (int64_t)st.st_size;
    }
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return AVERROR(EINVAL);
    if (fseeko(s->file, (off_t)offset, whence) != 0) {
        s->failed = 1;
        return AVERROR(errno);
    }
    off_t pos = ftello(s->file);
    return pos < 0 ? AVERROR(errno) : (int64_t)pos;
}

// The fixed GIF palette: 6x6x6 RGB cube (indices 0..215) and 40 greys (216..255).
static uint32_t kvid_palette_color(int index) {
    int r, g, b;
    if (index < 216) {
        r = index / 36 * 51;
        g = index / 6 % 6 * 51;
        b = index % 6 * 51;
    } else {
        r = g = b = ((index - 215) * 255 + 20) / 41;
    }
    return 0xFF000000u | (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
}

static uint8_t kvid_palette_index(int r, int g, int b) {
    int ri = (r * 5 + 127) / 255, gi = (g * 5 + 127) / 255, bi = (b * 5 + 127) / 255;
    int dr = r - ri * 51, dg = g - gi * 51, db = b - bi * 51;
    int cube_error = dr * dr + dg * dg + db * db;
    int k = ((r + g + b) * 41 + 382) / 765;     // nearest of the 40 greys, k*255/41
    if (k < 1) k = 1;
    if (k > 40) k = 40;
    int grey = (k * 255 + 20) / 41;
    int grey_error = (r - grey) * (r - grey) + (g - grey) * (g - grey) + (b - grey) * (b - grey);
    return grey_error < cube_error ? (uint8_t)(215 + k) : (uint8_t)(ri * 36 + gi * 6 + bi);
}

typedef struct {
    AVFormatContext *oc;
    AVStream *st;
    AVCodecContext *enc;
    AVPacket *pkt;
} kvid_encoder;

// Takes every packet the encoder has ready and writes it.
static int kvid_write_packets(kvid_encoder *e, kvid_info *info) {
    char text[96];
    for (;;) {
        int r = avcodec_receive_packet(e->enc, e->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return KVID_OK;
        if (r < 0) {
            kvid_error_text(r, text, sizeof(text));
            return kvid_fail(info, KVID_CORRUPT, "the %s encoder failed: %s", e->enc->codec->name, text);
        }
        av_packet_rescale_ts(e->pkt, e->enc->time_base, e->st->time_base);
        e->pkt->stream_index = e->st->index;
        r = av_interleaved_write_frame(e->oc, e->pkt);   // takes the packet's reference
        if (r < 0) {
            kvid_error_text(r, text, sizeof(text));
            return kvid_fail(info, KVID_OPEN_FAILED, "cannot write a packet: %s", text);
        }
    }
}

static int kvid_encode_frames(kvid_encoder *e, const kvid_format *f, const uint8_t *rgb, int frames,
                              int width, int height, kvid_info *info) {
    char text[96];
    int status = KVID_OK;
    struct SwsContext *sws = NULL;
    AVFrame *frame = av_frame_alloc();
    // The caller's rows are copied into a padded frame first: swscale's SIMD code reads past
    // the end of a row (and so of the caller's buffer).
    AVFrame *source = av_frame_alloc();
    int r = -1;
    if (frame != NULL && source != NULL) {
        r = kvid_frame_buffer(frame, f->pix_fmt, width, height);
        if (r >= 0) r = kvid_frame_buffer(source, AV_PIX_FMT_RGB24, width, height);
    }
    if (r < 0) status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate a frame");
    if (status == KVID_OK && f->pix_fmt != AV_PIX_FMT_PAL8) {
        sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, f->pix_fmt,
                             SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
        if (sws == NULL) {
            status = kvid_fail(info, KVID_UNSUPPORTED_CODEC, "libswscale cannot convert rgb24 to %s",
                               av_get_pix_fmt_name(f->pix_fmt));
        } else if (f->pix_fmt != AV_PIX_FMT_BGR0) {
            int *inv_table, *table, src_range, dst_range, brightness, contrast, saturation;
            if (sws_getColorspaceDetails(sws, &inv_table, &src_range, &table, &dst_range,
                                         &brightness, &contrast, &saturation) >= 0) {
                const int *bt601 = sws_getCoefficients(SWS_CS_ITU601);
                sws_setColorspaceDetails(sws, inv_table, src_range, bt601, f->full_range,
                                         brightness, contrast, saturation);
            }
        }
    }
    size_t frame_bytes = (size_t)width * (size_t)height * 3;
    for (int i = 0; status == KVID_OK && i < frames; i++) {
        if (!av_frame_is_writable(frame)) {   // the encoder kept a reference: a new, zeroed buffer
            av_frame_unref(frame);
            if (kvid_frame_buffer(frame, f->pix_fmt, width, height) < 0) {
                status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate a frame");
                break;
            }
        }
        const uint8_t *src = rgb + (size_t)i * frame_bytes;
        if (f->pix_fmt == AV_PIX_FMT_PAL8) {
            for (int y = 0; y < height; y++) {
                const uint8_t *p = src + (size_t)y * width * 3;
                uint8_t *q = frame->data[0] + (size_t)y * frame->linesize[0];
                for (int x = 0; x < width; x++, p += 3) q[x] = kvid_palette_index(p[0], p[1], p[2]);
            }
            uint32_t *palette = (uint32_t *)frame->data[1];
            for (int c = 0; c < 256; c++) palette[c] = kvid_palette_color(c);
        } else {
            size_t row = (size_t)width * 3;
            for (int y = 0; y < height; y++) {
                memcpy(source->data[0] + (size_t)y * (size_t)source->linesize[0], src + (size_t)y * row, row);
            }
            if (sws_scale(sws, (const uint8_t *const *)source->data, source->linesize, 0, height,
                          frame->data, frame->linesize) <= 0) {
                status = kvid_fail(info, KVID_CORRUPT, "libswscale failed");
                break;
            }
        }
        frame->pts = i;
        r = avcodec_send_frame(e->enc, frame);
        if (r < 0) {
            kvid_error_text(r, text, sizeof(text));
            status = kvid_fail(info, KVID_CORRUPT, "the %s encoder rejects frame %d: %s",
                               e->enc->codec->name, i, text);
            break;
        }
        status = kvid_write_packets(e, info);
    }
    if (status == KVID_OK) {
        r = avcodec_send_frame(e->enc, NULL);
        status = r < 0 && r != AVERROR_EOF
            ? kvid_fail(info, KVID_CORRUPT, "the %s encoder cannot be flushed", e->enc->codec->name)
            : kvid_write_packets(e, info);
    }
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_frame_free(&source);
    return status;
}

static int kvid_encode(const char *path, const kvid_format *f, const AVCodec *codec,
                       const uint8_t *rgb, int frames, int width, int height, int fps,
                       kvid_info *info) {
    char text[96];
    int status = KVID_OK, r;
    kvid_sink sink = {NULL, 0};
    kvid_encoder e;
    memset(&e, 0, sizeof(e));
    AVIOContext *pb = NULL;
    AVDictionary *options = NULL;
    int header_written = 0;

    sink.file = fopen(path, "wb");
    if (sink.file == NULL) {
        kvid_error_text(AVERROR(errno), text, sizeof(text));
        return kvid_fail(info, KVID_OPEN_FAILED, "cannot create %s: %s", path, text);
    }
    r = avformat_alloc_output_context2(&e.oc, NULL, f->muxer, NULL);
    if (r < 0 || e.oc == NULL) status = kvid_fail(info, KVID_UNSUPPORTED_CODEC, "no %s muxer", f->muxer);
    if (status == KVID_OK) {
        snprintf(info->container, sizeof(info->container), "%s", e.oc->oformat->name);
        uint8_t *io_buffer = (uint8_t *)av_malloc(KVID_IO_BUFFER);
        pb = io_buffer != NULL ? avio_alloc_context(io_buffer, KVID_IO_BUFFER, 1, &sink, NULL,
                                                    kvid_write, kvid_seek_sink) : NULL;
        if (pb == NULL) {
            av_free(io_buffer);
            status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the writer");
        } else {
            e.oc->pb = pb;
            e.oc->flags |= AVFMT_FLAG_BITEXACT;
        }
    }
    if (status == KVID_OK) {
        e.enc = avcodec_alloc_context3(codec);
        e.st = avformat_new_stream(e.oc, NULL);
        e.pkt = av_packet_alloc();
        if (e.enc == NULL || e.st == NULL || e.pkt == NULL) {
            status = kvid_fail(info, KVID_OUT_OF_MEMORY, "cannot allocate the encoder");
        }
    }
    if (status == KVID_OK) {
        AVCodecContext *enc = e.enc;
        enc->width = width;
        enc->height = height;
        enc->pix_fmt = f->pix_fmt;
        enc->time_base = (AVRational){1, fps};
        enc->framerate = (AVRational){fps, 1};
        enc->sample_aspect_ratio = (AVRational){1, 1};
        enc->gop_size = fps;
        enc->thread_count = 1;
        enc->flags |= AV_CODEC_FLAG_BITEXACT;
        if (e.oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        if (f->pix_fmt == AV_PIX_FMT_YUV420P) {
            enc->color_range = f->full_range ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
            enc->colorspace = AVCOL_SPC_SMPTE170M;
        } else if (f->pix_fmt == AV_PIX_FMT_BGR0) {
            enc->colorspace = AVCOL_SPC_RGB;
        }
        const char *name = codec->name;
        if (strcmp(name, "libx264") == 0) {
            av_dict_set(&options, "preset", "medium", 0);
            av_dict_set(&options, "crf", "20", 0);
        } else if (strcmp(name, "libvpx-vp9") == 0) {
            enc->bit_rate = 0;
            av_dict_set(&options, "crf", "32", 0);
            av_dict_set(&options, "deadline", "good", 0);
            av_dict_set(&options, "cpu-used", "4", 0);
            av_dict_set(&options, "row-mt", "0", 0);
        } else if (strcmp(name, "mjpeg") == 0 || strcmp(name, "mpeg4") == 0) {
            enc->flags |= AV_CODEC_FLAG_QSCALE;
            enc->global_quality = FF_QP2LAMBDA * 3;
            enc->max_b_frames = 0;
        }
        r = avcodec_open2(enc, codec, &options);
        if (r < 0) {
            kvid_error_text(r, text, sizeof(text));
            status = kvid_fail(info, KVID_UNSUPPORTED_CODEC, "cannot open the %s encoder: %s", name, text);
        }
    }
    if (status == KVID_OK) {
        r = avcodec_parameters_from_context(e.st->codecpar, e.enc);
        e.st->time_base = e.enc->time_base;
        e.st->avg_frame_rate = (AVRational){fps, 1};
        if (r >= 0) r = avformat_write_header(e.oc, NULL);
        if (r < 0) {
            kvid_error_text(r, text, sizeof(text));
            status = kvid_fail(info, KVID_OPEN_FAILED, "cannot write the %s header: %s", f->muxer, text);
        } else {
            header_written = 1;
        }
    }
    if (status == KVID_OK) status = kvid_encode_frames(&e, f, rgb, frames, width, height, info);
    if (header_written) {
        r = av_write_trailer(e.oc);
        if (status == KVID_OK && r < 0) {
            kvid_error_text(r, text, sizeof(text));
            status = kvid_fail(info, KVID_OPEN_FAILED, "cannot write the %s trailer: %s", f->muxer, text);
        }
    }
    if (pb != NULL) {
        avio_flush(pb);
        if (status == KVID_OK && (pb->error < 0 || sink.failed)) {
            status = kvid_fail(info, KVID_OPEN_FAILED, "cannot write %s", path);
        }
        av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
    av_dict_free(&options);
    av_packet_free(&e.pkt);
    avcodec_free_context(&e.enc);
    avformat_free_context(e.oc);
    if (fclose(sink.file) != 0 && status == KVID_OK) {
        status = kvid_fail(info, KVID_OPEN_FAILED, "cannot write %s", path);
    }
    if (status != KVID_OK) remove(path);
    return status;
}

int kvid_encode_file(const char *path, const char *format, const uint8_t *rgb, int frames,
                     int width, int height, int fps, kvid_info *info) {
    kvid_info local;
    if (info == NULL) info = &local;
    kvid_reset(info);
    if (path == NULL || rgb == NULL) return kvid_fail(info, KVID_BAD_ARGUMENT, "no path or no frames");
    const kvid_format *f = kvid_find_format(format);
    if (f == NULL) {
        return kvid_fail(info, KVID_BAD_ARGUMENT, "unknown format %s (known: avi-mjpeg, mp4-h264, "
                         "mkv-h264, webm-vp9, gif, mkv-ffv1)", format != NULL ? format : "(null)");
    }
    if (frames < 1 || fps < 1 || fps > 1000) {
        return kvid_fail(info, KVID_BAD_ARGUMENT, "%d frames at %d fps (need >= 1 frame, 1...1000 "
                         "fps)", frames, fps);
    }
    if (width < 1 || height < 1 || width > KVID_MAX_DIMENSION || height > KVID_MAX_DIMENSION) {
        return kvid_fail(info, KVID_BAD_ARGUMENT, "frame size %dx%d (allowed: 1...%d per side)",
                         width, height, KVID_MAX_DIMENSION);
    }
    if (f->even && (width % 2 != 0 || height % 2 != 0)) {
        return kvid_fail(info, KVID_BAD_ARGUMENT, "%s needs an even width and height (4:2:0), "
                         "not %dx%d", f->name, width, height);
    }
    if ((uint64_t)frames > SIZE_MAX / ((size_t)width * (size_t)height * 3)) {
        return kvid_fail(info, KVID_BAD_ARGUMENT, "the frames cannot be in memory");
    }
    kvid_init_once();
    const AVCodec *codec = kvid_find_encoder(f);
    if (codec == NULL) {
        return kvid_fail(info, KVID_UNSUPPORTED_CODEC, "no encoder for %s in this FFmpeg", f->name);
    }
    info->width = width;
    info->height = height;
    info->frame_count = frames;
    info->keyframe_count = 0;
    info->fps = fps;
    info->duration_seconds = (double)frames / fps;
    info->indexed = 1;
    snprintf(info->codec, sizeof(info->codec), "%s", codec->name);
    return kvid_encode(path, f, codec, rgb, frames, width, height, fps, info);
}

#endif

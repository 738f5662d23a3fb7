/* DUT runtime: frame parser, request dispatch and the timed inference loop.
 * Wire protocol v5, specified in docs/protocol.md; constants come from tinyhil_wire.h,
 * which is generated from harness/protocol/wire.py. The parser takes any byte stream: a frame is
 * acted on only when its header CRC-8 and its CRC-16 both check out. */
#include <stdint.h>
#include <string.h>

#include "tinyhil_crc.h"
#include "tinyhil_dut.h"
#include "tinyhil_model.h"
#include "tinyhil_port.h"
#include "tinyhil_wire.h"

/* Build-time settings; the harness passes them with -D from the board file. */
#ifndef TINYHIL_BOARD_NAME
#define TINYHIL_BOARD_NAME "unknown"
#endif
#ifndef TINYHIL_CLOCK_HZ
#define TINYHIL_CLOCK_HZ 0UL
#endif
#ifndef TINYHIL_MAX_PAYLOAD
#define TINYHIL_MAX_PAYLOAD 128
#endif
#ifndef TINYHIL_VECTOR_CAPACITY
#define TINYHIL_VECTOR_CAPACITY 256
#endif
#ifndef TINYHIL_OUTPUT_CAPACITY
#define TINYHIL_OUTPUT_CAPACITY 64
#endif
#ifndef TINYHIL_MAX_RUNS
#define TINYHIL_MAX_RUNS 16
#endif
/* Bytes kept for the last INFER_BATCH's results (outputs and cycles), sized from the board's
 * RAM: how many vectors one request may carry follows from it (IDENTITY's batch_max). */
#ifndef TINYHIL_BATCH_BYTES
#define TINYHIL_BATCH_BYTES 0
#endif
#ifndef TINYHIL_BUILD_ID
#define TINYHIL_BUILD_ID 0, 0, 0, 0, 0, 0, 0, 0
#endif
#ifndef TINYHIL_FLAGS
#define TINYHIL_FLAGS 0
#endif

#if TINYHIL_MAX_PAYLOAD < 64
#error "TINYHIL_MAX_PAYLOAD must be at least 64 bytes (the IDENTITY reply)"
#endif

static const uint8_t build_id[8] = {TINYHIL_BUILD_ID};

/* Word-aligned buffers: models read int16/float vectors in place. */
static uint32_t vector_words[(TINYHIL_VECTOR_CAPACITY + 3) / 4];
static uint32_t output_words[(TINYHIL_OUTPUT_CAPACITY + 3) / 4];
#define VECTOR ((uint8_t *)vector_words)
#define OUTPUT ((uint8_t *)output_words)
static uint32_t run_cycles[TINYHIL_MAX_RUNS];
static uint32_t counter_overhead;   /* cycles one back-to-back counter read costs */
static uint32_t counter_resolution; /* smallest step the counter was seen to move by */
/* Shortest timed run worth reporting: on a host clock 1000 of its steps (quantised to 0.1 % at
 * most); on a microcontroller's cycle counter one inference (a constant: no RAM for it). */
#if TINYHIL_FLAGS & TINYHIL_FLAG_HOST_CLOCK
#define MIN_TIMED_TICKS (1000UL * (counter_resolution ? counter_resolution : 1))
#else
#define MIN_TIMED_TICKS 0UL
#endif
static uint8_t identified;          /* IDENTITY sent since boot: zeroed by every reset */
static uint8_t batch_result[TINYHIL_BATCH_BYTES ? TINYHIL_BATCH_BYTES : 1];

/* Staged batches (a noisy link). A STAGE frame carries one piece of one vector: `slot u8`,
 * `part u8` (kept in payload[0..1], outside every slot), then the vector's bytes from
 * part * TINYHIL_STAGE_PIECE on, written as they arrive straight into the slot's place in the
 * batch (payload + 2, where INFER_BATCH's vectors sit): staging takes no RAM beyond two
 * bitmaps. A piece counts as staged only once its frame's CRC checked out, and a staged piece
 * is not written again (a second copy is ignored, so a damaged copy never spoils a whole one).
 * INFER_STAGED runs, once, each slot whose pieces are all staged, and unstages them; its reply says which slots ran and which pieces are still staged, so the host resends
 * only the pieces the link lost. INFER_STAGED with count 0 unstages every piece (a new batch),
 * and so does any other frame with a body beyond 2 bytes (it overwrites the slots). A result
 * takes at least 5 bytes of batch_result, so batch_max never exceeds STAGE_SLOTS. */
#define STAGE_SLOTS (TINYHIL_BATCH_BYTES / 5 + 1)
#define STAGE_PIECES (TINYHIL_MAX_PAYLOAD / TINYHIL_STAGE_PIECE + STAGE_SLOTS)
static uint8_t staged[(STAGE_PIECES + 7) / 8];   /* bit slot * stage_parts + part */
static uint8_t stage_ran[(STAGE_SLOTS + 7) / 8]; /* the slots the last INFER_STAGED ran */
static uint8_t stage_parts, stage_slots;         /* pieces per vector; slots (batch_max, <= 255) */
static uint8_t *stage_at;           /* where the STAGE frame being received writes, or NULL */

/* Exactly once: the request whose result is held (OUTPUT and run_cycles, or batch_result).
 * A resent request keeps its SEQ, so a byte-identical repeat of it (same TYPE, SEQ and CRC)
 * is answered from that result, never run again: an energy window or a per-vector cycle
 * count is never doubled by a noisy link. Any other request but FETCH (a piece of the held
 * RESULT) clears it. */
static uint8_t served;              /* 0: nothing held; else the held result's type */
static uint8_t served_seq;
static uint16_t served_crc, served_count;
/* The held RESULT's head as it goes on the wire: runs, loops, the runs the counter could time
 * and their cycles summed (0xFFFFFFFF: too many to sum in 32 bits). Every target is little
 * endian, as the wire is, so the payload is this, OUTPUT and run_cycles back to back. */
static struct __attribute__((packed)) {
    uint16_t runs;                  /* RESULT: its runs; BATCH_ or STAGED_RESULT: the results */
    uint32_t loops;
    uint16_t timed;
    uint32_t total;
} held;
#define served_runs held.runs
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "RESULT is sent from memory as it lies: a big-endian target needs byte swaps"
#endif
static uint16_t frame_crc;          /* CRC-16 of the frame being dispatched */

/* Parser state. */
enum { HUNT, HEADER, BODY, TRAILER };
static uint8_t state = HUNT;
static uint8_t header[5];           /* TYPE SEQ LEN_LO LEN_HI HCRC */
static uint8_t payload[TINYHIL_MAX_PAYLOAD];
static uint16_t length, filled;
static uint16_t running_crc;
static uint8_t trailer[2];


static uint16_t crc16_block(const uint8_t *data, uint16_t len)
{
    uint16_t crc = 0xFFFF;
    while (len--)
        crc = crc16_update(crc, *data++);
    return crc;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* --- sending: header, payload pieces, CRC; no buffer for the whole frame --------------- */
static uint16_t tx_crc;

static void tx_bytes(const uint8_t *data, uint16_t len)
{
    for (uint16_t i = 0; i < len; i++)
        tx_crc = crc16_update(tx_crc, data[i]);
    tinyhil_port_write(data, len);
}

static void tx_u16(uint16_t v) { uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; tx_bytes(b, 2); }

static void tx_u32(uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    tx_bytes(b, 4);
}

static void tx_begin(uint8_t type, uint8_t seq, uint16_t len)
{
    uint8_t head[6] = {TINYHIL_SYNC, type, seq, (uint8_t)len, (uint8_t)(len >> 8), 0};
    uint8_t hcrc = 0;
    for (uint8_t i = 1; i < 5; i++)
        hcrc = crc8_update(hcrc, head[i]);
    head[5] = hcrc;
    tinyhil_port_write(head, 1);      /* SYNC is outside the CRC */
    tx_crc = 0xFFFF;
    tx_bytes(head + 1, 4);
    tinyhil_port_write(head + 5, 1);  /* HCRC is outside the CRC too */
}

/* After the CRC, one pad byte (0x00, never SYNC): a reply that lost a byte on the link is
 * completed by it and fails its CRC at once, instead of waiting for the next frame's bytes. */
static void tx_end(void)
{
    uint8_t b[3] = {(uint8_t)tx_crc, (uint8_t)(tx_crc >> 8), TINYHIL_PAD};
    tinyhil_port_write(b, 3);
    tinyhil_port_flush();
}

static void send_error(uint8_t seq, uint8_t code, uint16_t detail)
{
    tx_begin(TINYHIL_MSG_ERROR, seq, 3);
    tx_bytes(&code, 1);
    tx_u16(detail);
    tx_end();
}

/* --- requests ---------------------------------------------------------------------------- */
/* Vectors one INFER_BATCH may carry: as many as the payload and batch_result both hold. */
static uint16_t batch_max(void)
{
    uint16_t in = tinyhil_input_bytes(), per = (uint16_t)(tinyhil_output_bytes() + 4);
    if (in == 0 || TINYHIL_MAX_PAYLOAD < 2 + in)
        return 0;
    uint16_t by_payload = (uint16_t)((TINYHIL_MAX_PAYLOAD - 2) / in);
    uint16_t by_ram = (uint16_t)(TINYHIL_BATCH_BYTES / per);
    return by_payload < by_ram ? by_payload : by_ram;
}

static void send_identity(uint8_t seq)
{
    const char *board = TINYHIL_BOARD_NAME;
    const char *model = tinyhil_model_info.id;
    uint8_t board_len = (uint8_t)strlen(board), model_len = (uint8_t)strlen(model);
    uint8_t fixed[2] = {TINYHIL_PROTOCOL_VERSION,
                        (uint8_t)(TINYHIL_FLAGS | (identified ? TINYHIL_FLAG_IDENTIFIED_BEFORE : 0))};
    tx_begin(TINYHIL_MSG_IDENTITY, seq, (uint16_t)(2 + 4 + 4 + 4 + 2 + 2 + 2 + 3 + 3 + 8 + 8 + 2 + 1 + board_len + 1 + model_len));
    tx_bytes(fixed, 2);
    tx_u32(TINYHIL_CLOCK_HZ);
    tx_u32(tinyhil_port_timer_hz());
    tx_u32(counter_resolution);
    tx_u16(TINYHIL_MAX_PAYLOAD);
    tx_u16(TINYHIL_VECTOR_CAPACITY);
    tx_u16(TINYHIL_MAX_RUNS);
    tx_u16(tinyhil_model_info.input_count);
    tx_bytes(&tinyhil_model_info.input_dtype, 1);
    tx_u16(tinyhil_model_info.output_count);
    tx_bytes(&tinyhil_model_info.output_dtype, 1);
    tx_bytes(tinyhil_model_info.hash, 8);
    tx_bytes(build_id, 8);
    tx_u16(batch_max());
    tx_bytes(&board_len, 1);
    tx_bytes((const uint8_t *)board, board_len);
    tx_bytes(&model_len, 1);
    tx_bytes((const uint8_t *)model, model_len);
    tx_end();
    identified = 1;
}

/* Inferences back to back per timed run: 1 on a microcontroller; on a host clock (native),
 * enough that one run spans MIN_TIMED_TICKS, so a 10 ns model on a 10 ns-step clock is not
 * read as 0 ticks. Doubling from 1 keeps the search short; the cost is untimed. */
static uint32_t calibrate_loops(int *failed)
{
    uint32_t loops = 1;
    while (MIN_TIMED_TICKS && loops < 0x1000000UL) {
        uint32_t start = tinyhil_port_cycles();
        for (uint32_t i = 0; i < loops && !*failed; i++)
            *failed = tinyhil_model_infer(VECTOR, OUTPUT);
        if (*failed || tinyhil_port_cycles() - start >= MIN_TIMED_TICKS)
            break;
        loops *= 2;
    }
    return loops;
}

static void send_result(uint8_t seq);
static void send_batch_result(uint8_t seq, uint8_t type);

/* One timed run of `loops` inferences on VECTOR, in counter ticks less the counter's own
 * cost; the latency suite's runs and a batch's vectors are timed by this same code, so a
 * vector's cycles are the same figure either way. */
static uint32_t timed_run(uint32_t loops, int *failed)
{
    uint32_t start = tinyhil_port_cycles();
    for (uint32_t j = 0; j < loops && !*failed; j++)
        *failed = tinyhil_model_infer(VECTOR, OUTPUT);
    uint32_t spent = tinyhil_port_cycles() - start;
    /* A counter that ran backwards (an emulator whose timer lags its overflow flag) gives no
     * figure rather than a wrong one. */
    if (spent & 0x80000000UL)
        return TINYHIL_CYCLES_INVALID;
    return spent > counter_overhead ? spent - counter_overhead : 0;
}

/* Warm-up runs, then `runs` timed runs (each `loops` inferences) with the marker high around
 * the timed loop alone. */
static void run_inference(uint8_t seq, uint16_t runs, uint16_t warmup)
{
    int failed = 0;
    while (warmup-- && !failed)
        failed = tinyhil_model_infer(VECTOR, OUTPUT);
    uint32_t loops = failed ? 1 : calibrate_loops(&failed);
    if (failed) {
        send_error(seq, TINYHIL_ERR_MODEL_FAILED, 0);
        return;
    }
    tinyhil_port_marker(1);
    for (uint16_t i = 0; i < runs && !failed; i++)
        run_cycles[i] = timed_run(loops, &failed);
    tinyhil_port_marker(0);
    /* The total of the runs the counter could time, for a host that needs no more (an energy
     * window); 0xFFFFFFFF when it does not fit 32 bits. */
    held.timed = 0;
    held.total = 0;
    for (uint16_t i = 0; i < runs; i++) {
        uint32_t spent = run_cycles[i];
        if (spent == TINYHIL_CYCLES_INVALID)
            continue;
        held.timed++;
        held.total = held.total + spent < held.total ? 0xFFFFFFFFUL : held.total + spent;
    }
    if (failed) {
        send_error(seq, TINYHIL_ERR_MODEL_FAILED, 0);
        return;
    }
    served_runs = runs;
    held.loops = loops;
    send_result(seq);
}

static uint16_t result_bytes(void) { return (uint16_t)(sizeof held + tinyhil_output_bytes() + 4 * served_runs); }

/* Bytes [from, to) of the held RESULT's payload: held, OUTPUT and run_cycles, one stretch of
 * memory after the other. One function sends the whole reply and a FETCH of a piece of it (the
 * energy suite fetches only the stretches before the per-run cycles). */
static void tx_result(uint16_t from, uint16_t to)
{
    const uint8_t *mem = (const uint8_t *)&held;
    uint16_t size = sizeof held, start = 0;       /* the stretch and where it starts */
    for (uint8_t k = 0; k < 3; k++) {
        if (k == 1) {
            mem = OUTPUT;
            size = tinyhil_output_bytes();
        }
        else if (k == 2) {
            mem = (const uint8_t *)run_cycles;
            size = (uint16_t)(4 * served_runs);
        }
        uint16_t lo = from > start ? from : start, hi = to < start + size ? to : (uint16_t)(start + size);
        if (lo < hi)
            tx_bytes(mem + (lo - start), (uint16_t)(hi - lo));
        start = (uint16_t)(start + size);
    }
}

static void send_result(uint8_t seq)
{
    tx_begin(TINYHIL_MSG_RESULT, seq, result_bytes());
    tx_result(0, result_bytes());
    tx_end();
    served = TINYHIL_MSG_RESULT;
    served_seq = seq;
    served_crc = frame_crc;
}

/* FETCH (offset u16, length u16), sent with the SEQ of the request whose RESULT is held: a
 * piece of that RESULT, for a link that damages a long reply every time it is sent whole. It
 * neither runs nor clears anything, so the held result stays for the next piece. */
static void send_result_part(uint8_t seq)
{
    if (served != TINYHIL_MSG_RESULT || seq != served_seq || length != 4) {
        send_error(seq, TINYHIL_ERR_NOT_HELD, 0);
        return;
    }
    uint16_t total = result_bytes(), from = get_u16(payload), count = get_u16(payload + 2);
    if (from > total)
        from = total;
    if (count > total - from)
        count = (uint16_t)(total - from);
    tx_begin(TINYHIL_MSG_RESULT_PART, seq, (uint16_t)(2 + count));
    tx_u16(from);
    tx_result(from, (uint16_t)(from + count));
    tx_end();
}

static uint8_t bit_of(const uint8_t *map, uint16_t bit) { return (uint8_t)(map[bit / 8] >> (bit % 8) & 1); }

/* A staged slot whose pieces are all there, or (`unstage`) its pieces cleared. */
static uint8_t slot_pieces(uint16_t slot, uint8_t unstage)
{
    uint16_t first = (uint16_t)(slot * stage_parts);
    for (uint16_t bit = first; bit < first + stage_parts; bit++) {
        if (unstage)
            staged[bit / 8] &= (uint8_t)~(1u << (bit % 8));
        else if (!bit_of(staged, bit))
            return 0;
    }
    return 1;
}

/* INFER_BATCH, INFER_STAGED (`staged_run`): each vector once, timed alone (a test set's
 * per-vector cycles); staged, only the slots whose pieces are all there. Results are kept in
 * batch_result first, in slot order, so a repeat of this request can be answered from them. */
static void run_batch(uint8_t seq, uint16_t count, uint8_t staged_run)
{
    uint16_t in = tinyhil_input_bytes(), out = tinyhil_output_bytes(), per = (uint16_t)(out + 4);
    uint16_t done = 0;
    memset(stage_ran, 0, sizeof stage_ran);
    if (staged_run && count == 0)
        memset(staged, 0, sizeof staged);        /* a new batch */
    for (uint16_t k = 0; k < count; k++) {
        if (staged_run && !slot_pieces(k, 0))
            continue;
        memcpy(VECTOR, payload + 2 + (uint32_t)k * in, in);
        int failed = 0;
        uint32_t spent = timed_run(1, &failed);
        if (failed) {
            send_error(seq, TINYHIL_ERR_MODEL_FAILED, k);
            return;
        }
        uint8_t *slot = batch_result + (uint32_t)done++ * per;
        memcpy(slot, OUTPUT, out);
        for (uint8_t b = 0; b < 4; b++)
            slot[out + b] = (uint8_t)(spent >> (8 * b));
        if (staged_run) {
            stage_ran[k / 8] |= (uint8_t)(1u << (k % 8));
            slot_pieces(k, 1);                   /* it ran: never again from these bytes */
        }
    }
    served_count = count;
    served_runs = done;
    send_batch_result(seq, staged_run ? TINYHIL_MSG_STAGED_RESULT : TINYHIL_MSG_BATCH_RESULT);
}

/* BATCH_RESULT, or STAGED_RESULT (`type`): the held results, for STAGED_RESULT after
 * the bitmaps of the slots that ran and of the pieces still staged. One function for both
 * keeps the AVR's stack bound small. */
static void send_batch_result(uint8_t seq, uint8_t type)
{
    uint16_t ran = 0, pieces = 0;     /* the bitmaps' bytes */
    if (type == TINYHIL_MSG_STAGED_RESULT) {
        ran = (uint16_t)((served_count + 7) / 8);
        pieces = (uint16_t)(((uint32_t)served_count * stage_parts + 7) / 8);
    }
    uint16_t results = (uint16_t)(served_runs * (tinyhil_output_bytes() + 4));
    served = type;
    served_seq = seq;
    served_crc = frame_crc;
    tx_begin(type, seq, (uint16_t)(2 + ran + pieces + results));
    tx_u16(served_count);
    tx_bytes(stage_ran, ran);
    tx_bytes(staged, pieces);
    tx_bytes(batch_result, results);
    tx_end();
}

static void dispatch(uint8_t type, uint8_t seq)
{
    uint16_t need = tinyhil_input_bytes();
    if ((type == TINYHIL_MSG_INFER || type == TINYHIL_MSG_INFER_LOADED) && length >= 2) {
        uint16_t runs = get_u16(payload);
        if (runs == 0 || runs > TINYHIL_MAX_RUNS) {
            send_error(seq, TINYHIL_ERR_RUNS_OUT_OF_RANGE, TINYHIL_MAX_RUNS);
            return;
        }
    }
    switch (type) {
    case TINYHIL_MSG_IDENTIFY:
        send_identity(seq);
        break;
    case TINYHIL_MSG_ECHO:
        tx_begin(TINYHIL_MSG_ECHO_REPLY, seq, length);
        tx_bytes(payload, length);
        tx_end();
        break;
    case TINYHIL_MSG_LOAD: {
        /* No reply: INFER_LOADED checks the whole vector, so a lost LOAD is caught there. */
        if (length < 2)
            break;
        uint16_t offset = get_u16(payload), count = (uint16_t)(length - 2);
        if ((uint32_t)offset + count <= TINYHIL_VECTOR_CAPACITY)
            memcpy(VECTOR + offset, payload + 2, count);
        break;
    }
    case TINYHIL_MSG_INFER:
        if (length != 4 + need || need > TINYHIL_VECTOR_CAPACITY) {
            send_error(seq, TINYHIL_ERR_BAD_LENGTH, need);
            break;
        }
        memcpy(VECTOR, payload + 4, need);
        run_inference(seq, get_u16(payload), get_u16(payload + 2));
        break;
    case TINYHIL_MSG_INFER_LOADED:
        if (length != 8) {
            send_error(seq, TINYHIL_ERR_BAD_LENGTH, 8);
            break;
        }
        if (get_u16(payload + 4) != need || need > TINYHIL_VECTOR_CAPACITY ||
            crc16_block(VECTOR, need) != get_u16(payload + 6)) {
            send_error(seq, TINYHIL_ERR_VECTOR_MISMATCH, need);
            break;
        }
        run_inference(seq, get_u16(payload), get_u16(payload + 2));
        break;
    case TINYHIL_MSG_INFER_BATCH:
    case TINYHIL_MSG_INFER_STAGED: {
        /* One call of run_batch for both, so that it is inlined (the AVR's stack bound). */
        uint8_t staged_run = type == TINYHIL_MSG_INFER_STAGED;
        uint16_t count = length >= 2 ? get_u16(payload) : 0;
        uint16_t most = staged_run ? stage_slots : batch_max();
        if (staged_run && length != 2) {
            send_error(seq, TINYHIL_ERR_BAD_LENGTH, 2);
            break;
        }
        if ((count == 0 && !staged_run) || count > most) {
            send_error(seq, TINYHIL_ERR_BATCH_OUT_OF_RANGE, most);
            break;
        }
        if (!staged_run && length != 2 + (uint32_t)count * need) {
            send_error(seq, TINYHIL_ERR_BAD_LENGTH, (uint16_t)(2 + count * need));
            break;
        }
        run_batch(seq, count, staged_run);
        break;
    }
    case TINYHIL_MSG_STAGE:           /* no reply: INFER_STAGED says what is staged */
        if (stage_at) {               /* the slot and part are still in payload[0..1] */
            uint16_t bit = (uint16_t)(payload[0] * stage_parts + payload[1]);
            staged[bit / 8] |= (uint8_t)(1u << (bit % 8));
        }
        break;
    default:
        send_error(seq, TINYHIL_ERR_UNKNOWN_TYPE, type);
        break;
    }
}

/* --- parser -------------------------------------------------------------------------------- */
/* A STAGE frame's body: its slot and part first (kept in payload[0..1], outside every slot),
 * then the piece, written into its place as it arrives. */
static void stage_byte(uint8_t byte)
{
    if (filled >= 2) {
        if (stage_at)
            stage_at[filled - 2] = byte;
        return;
    }
    payload[filled] = byte;
    if (filled == 1) {
        /* No division here: the soft UART's next byte is due (docs/attiny85.md). */
        uint16_t slot = payload[0], part = payload[1], in = tinyhil_input_bytes();
        uint16_t from = (uint16_t)(part * TINYHIL_STAGE_PIECE);
        stage_at = NULL;
        uint16_t bit = (uint16_t)(slot * stage_parts + part);
        if (slot < stage_slots && part < stage_parts && !bit_of(staged, bit) &&
            length == 2 + (in - from < TINYHIL_STAGE_PIECE ? in - from : TINYHIL_STAGE_PIECE))
            stage_at = payload + 2 + (uint32_t)slot * in + from;
        /* else a piece already staged (a second copy) is left as it is: only INFER_STAGED
         * unstages a piece, so a damaged copy never spoils a whole one */
    }
}

void tinyhil_dut_feed(uint8_t byte)
{
    switch (state) {
    case HUNT:
        if (byte == TINYHIL_SYNC) {
            state = HEADER;
            filled = 0;
        }
        break;
    case HEADER:
        header[filled++] = byte;
        if (filled < 5)
            break;
        {
            uint8_t hcrc = 0;
            for (uint8_t i = 0; i < 4; i++)
                hcrc = crc8_update(hcrc, header[i]);
            length = get_u16(header + 2);
            if (hcrc != header[4] || length > TINYHIL_MAX_PAYLOAD) {
                state = HUNT;          /* a damaged header: wait for the next SYNC */
                break;
            }
            running_crc = 0xFFFF;
            for (uint8_t i = 0; i < 4; i++)
                running_crc = crc16_update(running_crc, header[i]);
            stage_at = NULL;
            if (length > 2 && header[0] != TINYHIL_MSG_STAGE)
                memset(staged, 0, sizeof staged);   /* its body overwrites the slots */
            filled = 0;
            state = length ? BODY : TRAILER;
        }
        break;
    case BODY:
        if (header[0] == TINYHIL_MSG_STAGE)
            stage_byte(byte);
        else
            payload[filled] = byte;
        filled++;
        running_crc = crc16_update(running_crc, byte);
        if (filled == length) {
            filled = 0;
            state = TRAILER;
        }
        break;
    case TRAILER:
        trailer[filled++] = byte;
        if (filled < 2)
            break;
        state = HUNT;
        if (get_u16(trailer) == running_crc) {
            if (header[0] == TINYHIL_MSG_FETCH) {
                send_result_part(header[1]);    /* keeps the held result: not a new request */
                break;
            }
            if (served && header[1] == served_seq && running_crc == served_crc &&
                (header[0] == TINYHIL_MSG_INFER || header[0] == TINYHIL_MSG_INFER_LOADED ||
                 header[0] == TINYHIL_MSG_INFER_BATCH || header[0] == TINYHIL_MSG_INFER_STAGED)) {
                /* A resend of the request just served: its held result, not a second run. */
                if (served == TINYHIL_MSG_RESULT)
                    send_result(header[1]);
                else
                    send_batch_result(header[1], served);
                break;
            }
            served = 0;
            frame_crc = running_crc;
            dispatch(header[0], header[1]);
        }
        else if (header[0] != TINYHIL_MSG_LOAD && header[0] != TINYHIL_MSG_STAGE)
            /* The header was sound, so the host can be told at once which request to resend. */
            send_error(header[1], TINYHIL_ERR_BAD_CRC, running_crc);
        break;
    }
}

void tinyhil_dut_init(void)
{
    tinyhil_port_init();
    tinyhil_port_marker(0);
    /* A STAGE frame names its slot and part in one byte each. */
    uint16_t in = tinyhil_input_bytes(), most = batch_max();
    uint16_t parts = (uint16_t)((in + TINYHIL_STAGE_PIECE - 1) / TINYHIL_STAGE_PIECE);
    stage_parts = parts <= 255 ? (uint8_t)parts : 0;
    stage_slots = stage_parts ? (uint8_t)(most < 255 ? most : 255) : 0;
    /* Calibrate away the cost of reading the counter itself. */
    uint32_t best = 0xFFFFFFFFUL;
    for (uint8_t i = 0; i < 8; i++) {
        uint32_t a = tinyhil_port_cycles();
        uint32_t b = tinyhil_port_cycles();
        if (b - a < best)
            best = b - a;
    }
    counter_overhead = best;
    /* The counter's resolution: the smallest step it moves by (1 on a cycle counter). */
    uint32_t step = 0xFFFFFFFFUL;
    for (uint8_t i = 0; i < 8; i++) {
        uint32_t a = tinyhil_port_cycles(), b = a;
        for (uint16_t spin = 0; b == a && spin < 60000U; spin++)   /* a stuck counter: give up */
            b = tinyhil_port_cycles();
        if (b != a && b - a < step)
            step = b - a;
    }
    counter_resolution = step == 0xFFFFFFFFUL ? 0 : step;
}

void tinyhil_dut_main(void)
{
    tinyhil_dut_init();
    for (;;)
        tinyhil_dut_feed(tinyhil_port_read());
}

/* stream.h - the inside of a cio_stream: its buffers and the transport
 * (plain socket calls, or a TLS session) that moves its bytes. */
#ifndef COREIO_EXT_STREAM_H
#define COREIO_EXT_STREAM_H

#include "coreio.h"

#include <stdbool.h>

/* What carries a stream's bytes.  Each call is blocking in the sense of
 * coreio.h, and one task may be in read while another is in write. */
struct cio__stream_ops {
	/* Up to len bytes: > 0, 0 at the end of the stream, or -errno. */
	ssize_t (*read)(cio_stream *s, void *buf, size_t len);
	/* At least one byte of len (> 0), or -errno. */
	ssize_t (*write)(cio_stream *s, const void *buf, size_t len);
	/* Ends the writing half: 0 or -errno. */
	int (*shutdown)(cio_stream *s);
	/* Sends what the transport itself holds (ciphertext an interrupted
	 * write left): 0 or -errno; NULL: it holds nothing. */
	int (*flush)(cio_stream *s);
	/* Frees the transport's state (never the fd); NULL: nothing to free. */
	void (*release)(cio_stream *s);
	/* Whether the transport holds bytes either way (read from the fd
	 * but not yet given to the stream, or not yet sent): then the fd's
	 * readiness does not tell what the stream has.  NULL: never. */
	bool (*holds)(const cio_stream *s);
};

struct cio_stream {
	int fd;
	cio_wg calls;                /* transport calls in progress */
	bool closing;                /* cio_stream_close() ends them */
	const struct cio__stream_ops *ops;
	void *transport;             /* the ops' state: a TLS session */
	char *rbuf;                  /* read buffer: bytes rhead..rtail;
	                              * NULL while parked (with wbuf) */
	size_t rcap, rhead, rtail;
	char *wbuf;                  /* write buffer: bytes whead..wtail */
	size_t wcap, whead, wtail;
	int werr;                    /* a failed write's error, kept */
	int rerr;                    /* a read-ahead's error, for the next read */
	bool shut;                   /* the writing half was ended */
	int last_err;                /* the last failed call's result */
	int detail_err;              /* the result `detail` explains */
	char detail[200];
};

/* Frees s, its buffers and its transport's state without a word to the
 * peer and without closing the fd: for one whose fd was closed already
 * (a parked connection that its server closed).  Never blocks. */
void cio__stream_free(cio_stream *s);

/* Frees the buffers of a stream that has nothing buffered and whose
 * transport holds nothing: a connection idle between requests then costs
 * only the stream itself.  Until cio__stream_unpark() the stream may only
 * be closed.  Returns 0 (also when parked already), or -EBUSY when bytes
 * are buffered or a call is in progress. */
int cio__stream_park(cio_stream *s);

/* Gives a parked stream its buffers again: 0 (also when not parked), or
 * -ENOMEM (it stays parked). */
int cio__stream_unpark(cio_stream *s);

/* Reads into the read buffer what the socket of a plain stream holds
 * now, without waiting.  Returns the bytes read, 0 at the end of the
 * stream, or -errno: -EAGAIN when nothing is there, the buffer is full,
 * the transport is not plain (TLS), or the caller is interrupted (its
 * deadline passed, a cancel stands).  A socket's error is also kept for
 * the next read. */
ssize_t cio__stream_fill_now(cio_stream *s);

/* The plain transport: the fd's own recv and send. */
extern const struct cio__stream_ops cio__stream_plain;

/* Records why a transport call fails with err, in words (printf style),
 * for cio_stream_error(); returns err. */
int cio__stream_detail(cio_stream *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

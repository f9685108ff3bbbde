/*
 * libpoolshim.so: an LD_PRELOAD library that sends the TCP connections of an
 * unmodified program through the local POOL node (docs/OPERATIONS.md, "The
 * LD_PRELOAD shim"; protocol: docs/PROTOCOL.md, Appendix B).
 *
 *   LD_PRELOAD=/usr/lib/pool/libpoolshim.so POOL_SHIM_PORTS=80,6379,5432 prog
 *
 * connect() of a TCP socket to a listed port becomes: connect a new AF_UNIX
 * socket to the node's shim socket, send the 24-byte request naming the
 * destination, wait for the status, and dup3() the Unix socket over the
 * program's descriptor. All protocol work stays in Go; this file only
 * relays the destination and the status.
 *
 * Where a shimmed descriptor keeps its destination: in the Unix socket's own
 * name. The socket is bound, before connecting, to an abstract address
 * "\0poolshim:<request hex>:<random>", so getpeername() reads the
 * destination back from the descriptor itself. No table to keep in step with
 * close(), dup(), dup2(), fcntl(F_DUPFD), fork() or exec(): all of them keep
 * working untouched, and nothing here takes a lock.
 *
 * Non-blocking connect: the exchange with the node is done inside connect()
 * (bounded by POOL_SHIM_TIMEOUT_MS), then connect() reports -1/EINPROGRESS
 * for a non-blocking socket. The descriptor is then already writable and
 * SO_ERROR is 0, so poll, select and epoll (level or edge triggered) all see
 * the connection complete at once. A failure is reported by connect() itself
 * (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT), as a non-blocking connect may.
 * Why not return early and let the status arrive later: the status would then
 * sit in the byte stream in front of the program's data (every read function
 * would need interposing to strip it), and an AF_UNIX socket is writable as
 * soon as it is connected, whatever the far end does, so writability could
 * not signal the outcome anyway.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQ_LEN 24
#define RESP_LEN 8
#define DEFAULT_SOCKET "/run/pool/shim.sock"
#define DEFAULT_TIMEOUT_MS 15000
#define NAME_PREFIX "poolshim:"

enum { ST_CONNECTED = 0, ST_NO_ROUTE, ST_REFUSED, ST_UNREACHABLE, ST_TIMEOUT, ST_FAILED };
enum { FB_REFUSE = 0, FB_TCP };

static unsigned char ports[65536 / 8];
static int any_port;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int fallback = FB_REFUSE;
static int timeout_ms = DEFAULT_TIMEOUT_MS;
static int debug;
static atomic_int warned_unreachable;

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*name_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);
typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

static connect_fn real_connect;
static name_fn real_getpeername, real_getsockname;
static getsockopt_fn real_getsockopt;
static setsockopt_fn real_setsockopt;
static sendto_fn real_sendto;
static sendmsg_fn real_sendmsg;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
	char buf[512];
	int n = snprintf(buf, sizeof buf, "poolshim[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && n < (int)sizeof buf)
		vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	size_t len = strnlen(buf, sizeof buf - 2);
	buf[len++] = '\n';
	ssize_t w = write(2, buf, len);
	(void)w;
}

static void parse_ports(const char *s) {
	while (s && *s) {
		char *end;
		long lo = strtol(s, &end, 10), hi = lo;
		if (end != s && *end == '-') {
			const char *h = end + 1;
			hi = strtol(h, &end, 10);
			if (end == h)
				hi = -1;
		}
		if (end == s || lo < 1 || hi > 65535 || hi < lo || (*end && *end != ',')) {
			logf_("POOL_SHIM_PORTS: ignoring \"%.*s\" (want ports 1-65535 or ranges like 8000-8010, comma-separated)",
			      (int)strcspn(s, ","), s);
			end = strchr(s, ',');
			if (!end)
				return;
		} else {
			for (long p = lo; p <= hi; p++)
				ports[p / 8] |= (unsigned char)(1u << (p % 8));
			any_port = 1;
		}
		s = *end ? end + 1 : end;
	}
}

static void init_once(void) {
	real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
	real_getpeername = (name_fn)dlsym(RTLD_NEXT, "getpeername");
	real_getsockname = (name_fn)dlsym(RTLD_NEXT, "getsockname");
	real_getsockopt = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
	real_setsockopt = (setsockopt_fn)dlsym(RTLD_NEXT, "setsockopt");
	real_sendto = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
	real_sendmsg = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");

	const char *v = getenv("POOL_SHIM_DEBUG");
	debug = v && *v && strcmp(v, "0") != 0;
	parse_ports(getenv("POOL_SHIM_PORTS"));
	v = getenv("POOL_SHIM_SOCKET");
	if (!v || !*v)
		v = DEFAULT_SOCKET;
	if (strlen(v) >= sizeof sock_path) {
		logf_("POOL_SHIM_SOCKET: path longer than %zu bytes; shim disabled", sizeof sock_path - 1);
		any_port = 0;
	} else {
		strcpy(sock_path, v);
	}
	v = getenv("POOL_SHIM_FALLBACK");
	if (v && strcmp(v, "tcp") == 0)
		fallback = FB_TCP;
	else if (v && *v && strcmp(v, "refuse") != 0)
		logf_("POOL_SHIM_FALLBACK=%s: want tcp or refuse; using refuse", v);
	v = getenv("POOL_SHIM_TIMEOUT_MS");
	if (v && *v) {
		char *end;
		long t = strtol(v, &end, 10);
		if (*end || t < 1 || t > 600000)
			logf_("POOL_SHIM_TIMEOUT_MS=%s: want 1-600000; using %d", v, DEFAULT_TIMEOUT_MS);
		else
			timeout_ms = (int)t;
	}
	if (debug)
		logf_("loaded: socket %s, fallback %s, timeout %d ms%s", sock_path,
		      fallback == FB_TCP ? "tcp" : "refuse", timeout_ms, any_port ? "" : ", no ports: nothing intercepted");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* init: reads the environment once, at load time or, if another library's
 * constructor connects before ours ran, at that first call. */
__attribute__((constructor)) static void init(void) { pthread_once(&once, init_once); }

static const char hexdigits[] = "0123456789abcdef";

/* shimmed_dst: if fd is a shimmed descriptor, writes its original
 * destination (the request, decoded from the socket's name) to req and
 * returns 1. errno is preserved. */
static int shimmed_dst(int fd, unsigned char req[REQ_LEN]) {
	int saved = errno;
	struct sockaddr_un sun;
	socklen_t len = sizeof sun;
	int ok = 0;
	if (real_getsockname(fd, (struct sockaddr *)&sun, &len) == 0 && sun.sun_family == AF_UNIX &&
	    len >= offsetof(struct sockaddr_un, sun_path) + 1 + strlen(NAME_PREFIX) + 2 * REQ_LEN &&
	    sun.sun_path[0] == '\0' && memcmp(sun.sun_path + 1, NAME_PREFIX, strlen(NAME_PREFIX)) == 0) {
		const char *h = sun.sun_path + 1 + strlen(NAME_PREFIX);
		ok = 1;
		for (int i = 0; i < REQ_LEN && ok; i++) {
			const char *a = strchr(hexdigits, h[2 * i]), *b = strchr(hexdigits, h[2 * i + 1]);
			if (!a || !b || !h[2 * i] || !h[2 * i + 1])
				ok = 0;
			else
				req[i] = (unsigned char)((a - hexdigits) << 4 | (b - hexdigits));
		}
		ok = ok && (req[5] == 4 || req[5] == 6);
	}
	errno = saved;
	return ok;
}

/* req_to_sockaddr: the destination of a request as a socket address. */
static socklen_t req_to_sockaddr(const unsigned char req[REQ_LEN], struct sockaddr_storage *ss) {
	memset(ss, 0, sizeof *ss);
	if (req[5] == 4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_port, req + 6, 2);
		memcpy(&in->sin_addr, req + 8, 4);
		return sizeof *in;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_port, req + 6, 2);
	memcpy(&in6->sin6_addr, req + 8, 16);
	return sizeof *in6;
}

/* copy_addr: what getpeername/getsockname do with a result: truncate to the
 * caller's buffer and report the full length. */
static void copy_addr(const struct sockaddr_storage *ss, socklen_t n, struct sockaddr *addr, socklen_t *len) {
	memcpy(addr, ss, n < *len ? n : *len);
	*len = n;
}

static int64_t now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read_full: reads n bytes before the deadline; 0, or -1 with errno
 * (ETIMEDOUT, or ECONNRESET for an early end). */
static int read_full(int u, unsigned char *p, size_t n, int64_t deadline) {
	while (n > 0) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd pfd = {.fd = u, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		ssize_t k = recv(u, p, n, MSG_DONTWAIT);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = ECONNRESET;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* bind_name: binds u to the abstract name that records the destination.
 * The name ends with 64 random bits: abstract names are open to every local
 * user, and one who could guess ours could squat them and make the shim
 * fail. */
static int bind_name(int u, const unsigned char req[REQ_LEN]) {
	for (int attempt = 0; attempt < 4; attempt++) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		char *p = sun.sun_path + 1;
		memcpy(p, NAME_PREFIX, strlen(NAME_PREFIX));
		p += strlen(NAME_PREFIX);
		for (int i = 0; i < REQ_LEN; i++) {
			*p++ = hexdigits[req[i] >> 4];
			*p++ = hexdigits[req[i] & 15];
		}
		unsigned char nonce[8];
		ssize_t r;
		do
			r = getrandom(nonce, sizeof nonce, 0);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)sizeof nonce)
			return -1;
		*p++ = ':';
		for (size_t i = 0; i < sizeof nonce; i++) {
			*p++ = hexdigits[nonce[i] >> 4];
			*p++ = hexdigits[nonce[i] & 15];
		}
		if (bind(u, (struct sockaddr *)&sun, (socklen_t)(p - (char *)&sun)) == 0)
			return 0;
		if (errno != EADDRINUSE)
			return -1;
	}
	return -1;
}

/* exchange: connects a Unix socket to the node and asks for req. Returns
 * the socket with the status in *status, or -1 when the node could not be
 * reached (*status unset, errno says why: creating or connecting the Unix
 * socket failed) or gave no usable answer, or the socket could not be
 * prepared (*status = ST_FAILED or ST_TIMEOUT). */
static int exchange(const unsigned char req[REQ_LEN], int *status) {
	int64_t deadline = now_ms() + timeout_ms;
	int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u < 0) {
		logf_("cannot create a socket for the node: %s", strerror(errno));
		*status = ST_FAILED;
		return -1;
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, sock_path);
	/* A blocking Unix connect waits only while the node's backlog is full;
	 * SO_SNDTIMEO bounds that wait. */
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (bind_name(u, req) < 0 || real_setsockopt(u, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		/* A local failure, not an unreachable node: no fallback. */
		logf_("cannot prepare a socket for the node: %s", strerror(errno));
		*status = ST_FAILED;
		close(u);
		return -1;
	}
	int r;
	do
		r = real_connect(u, (struct sockaddr *)&sun, sizeof sun);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(u);
		errno = e;
		return -1;
	}
	/* A busy node answers and closes without reading: send errors are
	 * noticed by the read that follows. */
	ssize_t w;
	do
		w = send(u, req, REQ_LEN, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	unsigned char hdr[RESP_LEN], reason[256];
	if (read_full(u, hdr, RESP_LEN, deadline) < 0) {
		*status = errno == ETIMEDOUT ? ST_TIMEOUT : ST_FAILED;
		if (debug || *status == ST_TIMEOUT)
			logf_("no answer from the node on %s: %s", sock_path, strerror(errno));
		close(u);
		return -1;
	}
	if (memcmp(hdr, "PSHM", 4) != 0 || hdr[4] != 1 || hdr[5] > ST_FAILED || hdr[6] != 0 ||
	    read_full(u, reason, hdr[7], deadline) < 0) {
		logf_("bad answer from %s (is a pool node's shim socket there?)", sock_path);
		*status = ST_FAILED;
		close(u);
		return -1;
	}
	*status = hdr[5];
	if (debug && *status != ST_CONNECTED)
		logf_("the node answered status %d: %.*s", *status, (int)hdr[7], (const char *)reason);
	struct timeval zero = {0};
	real_setsockopt(u, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
	return u;
}

/* encode_request: the request for a TCP destination, per PROTOCOL.md
 * Appendix B; the family is the socket address's, so getpeername gives the
 * program back exactly what it connected to. */
static void encode_request(const struct sockaddr *addr, unsigned char req[REQ_LEN]) {
	memset(req, 0, REQ_LEN);
	memcpy(req, "PSHM", 4);
	req[4] = 1;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		req[5] = 4;
		memcpy(req + 6, &in->sin_port, 2);
		memcpy(req + 8, &in->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
		req[5] = 6;
		memcpy(req + 6, &in6->sin6_port, 2);
		memcpy(req + 8, &in6->sin6_addr, 16);
	}
}

/* wanted: a TCP socket connecting to a listed port. */
static int wanted(int fd, const struct sockaddr *addr, socklen_t len) {
	if (!any_port || !addr)
		return 0;
	uint16_t port;
	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
	else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
	else
		return 0;
	if (!(ports[port / 8] & (1u << (port % 8))))
		return 0;
	int saved = errno, type = 0, proto = 0;
	socklen_t l = sizeof type;
	int ok = real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM;
	l = sizeof proto;
	ok = ok && real_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) == 0 && proto == IPPROTO_TCP;
	errno = saved;
	return ok;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
	init();
	unsigned char req[REQ_LEN];
	if (shimmed_dst(fd, req)) {
		errno = EISCONN;
		return -1;
	}
	if (!wanted(fd, addr, len))
		return real_connect(fd, addr, len);

	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	if (fl < 0 || fdfl < 0)
		return -1; /* EBADF */
	encode_request(addr, req);
	int status = -1;
	int u = exchange(req, &status);
	if (u < 0 && status < 0) {
		/* The node could not be asked: POOL_SHIM_FALLBACK decides. */
		int e = errno;
		if (debug || !atomic_exchange(&warned_unreachable, 1))
			logf_("cannot reach the pool node's shim socket %s: %s; %s", sock_path, strerror(e),
			      fallback == FB_TCP ? "connecting directly (POOL_SHIM_FALLBACK=tcp)"
			                         : "refusing (POOL_SHIM_FALLBACK=refuse)");
		if (fallback == FB_TCP)
			return real_connect(fd, addr, len);
		errno = ECONNREFUSED;
		return -1;
	}
	if (u >= 0 && status != ST_CONNECTED)
		close(u);
	switch (status) {
	case ST_CONNECTED:
		break;
	case ST_NO_ROUTE:
		if (fallback == FB_TCP)
			return real_connect(fd, addr, len);
		errno = ECONNREFUSED;
		return -1;
	case ST_UNREACHABLE:
		errno = EHOSTUNREACH;
		return -1;
	case ST_TIMEOUT:
		errno = ETIMEDOUT;
		return -1;
	default:
		errno = ECONNREFUSED;
		return -1;
	}
	/* Put the connected Unix socket in the program's place, with the
	 * program's O_NONBLOCK (per open file) and FD_CLOEXEC (per descriptor). */
	if (fcntl(u, F_SETFL, (fcntl(u, F_GETFL) & ~O_NONBLOCK) | (fl & O_NONBLOCK)) < 0 ||
	    dup3(u, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		int e = errno;
		close(u);
		errno = e;
		return -1;
	}
	close(u);
	if (fl & O_NONBLOCK) {
		errno = EINPROGRESS; /* already complete: writable, SO_ERROR 0 */
		return -1;
	}
	return 0;
}

int getpeername(int fd, struct sockaddr *addr, socklen_t *len) {
	init();
	unsigned char req[REQ_LEN];
	if (addr && len && shimmed_dst(fd, req)) {
		struct sockaddr_storage ss;
		copy_addr(&ss, req_to_sockaddr(req, &ss), addr, len);
		return 0;
	}
	return real_getpeername(fd, addr, len);
}

/* getsockname of a shimmed descriptor: the unspecified address of the
 * destination's family, port 0 — the local end is the node's, not this
 * program's. */
int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
	init();
	unsigned char req[REQ_LEN];
	if (addr && len && shimmed_dst(fd, req)) {
		struct sockaddr_storage ss;
		memset(req + 6, 0, REQ_LEN - 6);
		copy_addr(&ss, req_to_sockaddr(req, &ss), addr, len);
		return 0;
	}
	return real_getsockname(fd, addr, len);
}

static int ip_level(int level) { return level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6; }

/* getsockopt of a shimmed descriptor: SO_DOMAIN and SO_PROTOCOL say what the
 * program created; TCP and IP options the Unix socket lacks read as zero. */
int getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
	init();
	unsigned char req[REQ_LEN];
	if (level == SOL_SOCKET && (name == SO_DOMAIN || name == SO_PROTOCOL) && val && len &&
	    *len >= sizeof(int) && shimmed_dst(fd, req)) {
		int v = name == SO_PROTOCOL ? IPPROTO_TCP : (req[5] == 4 ? AF_INET : AF_INET6);
		memcpy(val, &v, sizeof v);
		*len = sizeof v;
		return 0;
	}
	int r = real_getsockopt(fd, level, name, val, len);
	if (r < 0 && ip_level(level) && (errno == EOPNOTSUPP || errno == ENOPROTOOPT) && val && len &&
	    shimmed_dst(fd, req)) {
		memset(val, 0, *len);
		return 0;
	}
	return r;
}

/* setsockopt of a shimmed descriptor: TCP and IP options (TCP_NODELAY,
 * keepalive tuning, TOS) are accepted and ignored: the POOL session, not this
 * socket, carries the bytes. */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
	init();
	int r = real_setsockopt(fd, level, name, val, len);
	unsigned char req[REQ_LEN];
	if (r < 0 && ip_level(level) && (errno == EOPNOTSUPP || errno == ENOPROTOOPT) && shimmed_dst(fd, req))
		return 0;
	return r;
}

/* TCP Fast Open connects inside sendto/sendmsg (MSG_FASTOPEN): left alone,
 * it would reach a listed port directly, unprotected. Such a send becomes
 * the shim's connect followed by an ordinary send. */
static ssize_t fastopen_send(int fd, const struct sockaddr *addr, socklen_t len, const struct msghdr *msg,
                             const void *buf, size_t n, int flags) {
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS)
		return -1;
	flags &= ~MSG_FASTOPEN;
	if (msg) {
		struct msghdr m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return real_sendmsg(fd, &m, flags);
	}
	return real_sendto(fd, buf, n, flags, NULL, 0);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len) {
	init();
	if ((flags & MSG_FASTOPEN) && wanted(fd, addr, len))
		return fastopen_send(fd, addr, len, NULL, buf, n, flags);
	return real_sendto(fd, buf, n, flags, addr, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
	init();
	if ((flags & MSG_FASTOPEN) && msg && wanted(fd, msg->msg_name, msg->msg_namelen))
		return fastopen_send(fd, msg->msg_name, msg->msg_namelen, msg, NULL, 0, flags);
	return real_sendmsg(fd, msg, flags);
}

/*
 * shimtest: exercises libpoolshim.so from a C program, one scenario per run:
 *
 *   LD_PRELOAD=libpoolshim.so POOL_SHIM_PORTS=... shimtest SCENARIO HOST PORT
 *
 * Driven by shim_test.go, which runs a shimd whose fake router sends every
 * destination to a local echo server (or answers "no route"). Each scenario
 * sends a message, half-closes, and expects the same bytes back and then
 * EOF. Exit status 0 on success; otherwise a message on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *scenario;

#define FAIL(...)                                                   \
	do {                                                            \
		fprintf(stderr, "shimtest %s: line %d: ", scenario, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                               \
		fprintf(stderr, "\n");                                      \
		exit(1);                                                    \
	} while (0)

static struct sockaddr_storage dst;
static socklen_t dstlen;
static int family;

static void parse_dst(const char *host, const char *port) {
	memset(&dst, 0, sizeof dst);
	struct sockaddr_in *in = (struct sockaddr_in *)&dst;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&dst;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(port));
		dstlen = sizeof *in;
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(port));
		dstlen = sizeof *in6;
	} else {
		FAIL("bad host %s", host);
	}
}

/* same_addr: a and the destination are the same address and port. */
static int same_addr(const struct sockaddr_storage *a, socklen_t len) {
	if (len != dstlen || a->ss_family != dst.ss_family)
		return 0;
	if (family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)&dst;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&dst;
	return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void check_peer(int fd) {
	struct sockaddr_storage a;
	socklen_t l = sizeof a;
	if (getpeername(fd, (struct sockaddr *)&a, &l) < 0)
		FAIL("getpeername: %s", strerror(errno));
	if (!same_addr(&a, l))
		FAIL("getpeername is not the destination (family %d, len %u)", a.ss_family, (unsigned)l);
}

/* check_shimmed: the descriptor is the shim's (local port 0, the domain
 * reported as the program's) or, with want 0, a real TCP socket. */
static void check_shimmed(int fd, int want) {
	struct sockaddr_storage a;
	socklen_t l = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		FAIL("getsockname: %s", strerror(errno));
	if (a.ss_family != family)
		FAIL("getsockname family %d, want %d", a.ss_family, family);
	uint16_t port = family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port : ((struct sockaddr_in6 *)&a)->sin6_port;
	if ((port == 0) != want)
		FAIL("local port %u: %s", ntohs(port), want ? "want the shim's (0)" : "want a real TCP socket's");
	int v = 0;
	l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0 || v != family)
		FAIL("SO_DOMAIN %d, want %d", v, family);
	v = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0)
		FAIL("setsockopt TCP_NODELAY: %s", strerror(errno));
	l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &l) < 0 || v != 0)
		FAIL("SO_ERROR %d (%s)", v, strerror(v));
}

static void wait_fd(int fd, short ev) {
	struct pollfd p = {.fd = fd, .events = ev};
	int r;
	do
		r = poll(&p, 1, 10000);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		FAIL("poll for %d: %d (%s)", ev, r, r < 0 ? strerror(errno) : "timed out");
}

/* echo_want: sends msg, half-closes, expects want back then EOF; works on
 * blocking and non-blocking descriptors. */
static void echo_want(int fd, const char *msg, const char *want) {
	size_t n = strlen(msg), off = 0;
	while (off < n) {
		ssize_t w = write(fd, msg + off, n - off);
		if (w < 0 && errno == EAGAIN) {
			wait_fd(fd, POLLOUT);
			continue;
		}
		if (w < 0)
			FAIL("write: %s", strerror(errno));
		off += (size_t)w;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		FAIL("shutdown: %s", strerror(errno));
	char buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - got);
		if (r < 0 && errno == EAGAIN) {
			wait_fd(fd, POLLIN);
			continue;
		}
		if (r < 0)
			FAIL("read: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == sizeof buf)
			FAIL("more bytes back than sent");
	}
	if (got != strlen(want) || memcmp(buf, want, got) != 0)
		FAIL("echoed %zu bytes \"%.*s\", want \"%s\"", got, (int)got, buf, want);
}

static void echo(int fd, const char *msg) { echo_want(fd, msg, msg); }

static int tcp_socket(int flags) {
	int fd = socket(family, SOCK_STREAM | flags, 0);
	if (fd < 0)
		FAIL("socket: %s", strerror(errno));
	return fd;
}

static int connect_blocking(void) {
	int fd = tcp_socket(0);
	if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0)
		FAIL("connect: %s", strerror(errno));
	return fd;
}

/* connect_nonblocking: connect on a non-blocking socket; returns 1 if it
 * reported EINPROGRESS. */
static int connect_nonblocking(int fd) {
	if (connect(fd, (struct sockaddr *)&dst, dstlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		FAIL("non-blocking connect: %s", strerror(errno));
	return 1;
}

static void check_so_error(int fd) {
	int err = -1;
	socklen_t l = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err != 0)
		FAIL("SO_ERROR after the wait: %d (%s)", err, strerror(err));
	int fl = fcntl(fd, F_GETFL);
	if (!(fl & O_NONBLOCK))
		FAIL("O_NONBLOCK lost");
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: shimtest SCENARIO HOST PORT\n");
		return 2;
	}
	scenario = argv[1];
	parse_dst(argv[2], argv[3]);
	const char *s = scenario;

	if (!strcmp(s, "blocking")) {
		int fd = connect_blocking();
		check_peer(fd);
		check_shimmed(fd, 1);
		if (connect(fd, (struct sockaddr *)&dst, dstlen) == 0 || errno != EISCONN)
			FAIL("second connect: %s, want EISCONN", strerror(errno));
		echo(fd, "blocking hello");
		close(fd);
	} else if (!strcmp(s, "nonblock-poll")) {
		int fd = tcp_socket(SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (!connect_nonblocking(fd))
			FAIL("connect returned 0, want EINPROGRESS as the shim documents");
		/* Complete already: writable, and nothing to read (no status bytes
		 * in the stream). */
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
		if (poll(&p, 1, 0) != 1 || p.revents != POLLOUT)
			FAIL("poll right after connect: revents %#x, want POLLOUT only", p.revents);
		wait_fd(fd, POLLOUT);
		check_so_error(fd);
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			FAIL("FD_CLOEXEC lost");
		check_peer(fd);
		check_shimmed(fd, 1);
		echo(fd, "poll hello");
		close(fd);
	} else if (!strcmp(s, "select")) {
		int fd = tcp_socket(0);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		connect_nonblocking(fd);
		fd_set w;
		FD_ZERO(&w);
		FD_SET(fd, &w);
		struct timeval tv = {.tv_sec = 10};
		if (select(fd + 1, NULL, &w, NULL, &tv) != 1 || !FD_ISSET(fd, &w))
			FAIL("select did not report the descriptor writable");
		check_so_error(fd);
		if (fcntl(fd, F_GETFD) & FD_CLOEXEC)
			FAIL("FD_CLOEXEC appeared");
		echo(fd, "select hello");
		close(fd);
	} else if (!strcmp(s, "epoll")) {
		int fd = tcp_socket(SOCK_NONBLOCK);
		int ep = epoll_create1(0);
		connect_nonblocking(fd);
		/* Registered after connect, as event loops do, edge-triggered: the
		 * one edge must come (see OPERATIONS.md on registering before). */
		struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLET, .data.fd = fd};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			FAIL("epoll_ctl: %s", strerror(errno));
		struct epoll_event out;
		int n = epoll_wait(ep, &out, 1, 10000);
		if (n != 1 || !(out.events & EPOLLOUT) || (out.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || out.data.fd != fd)
			FAIL("epoll_wait: %d events %#x, want EPOLLOUT only", n, n == 1 ? out.events : 0);
		check_so_error(fd);
		echo(fd, "epoll hello");
		close(ep);
		close(fd);
	} else if (!strcmp(s, "fork")) {
		int fd = connect_blocking();
		pid_t pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0) {
			scenario = "fork (child)";
			check_peer(fd);
			check_shimmed(fd, 1);
			echo(fd, "hello from the child");
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			FAIL("the child failed");
		/* The parent's copy still names the destination; a new connection
		 * from the parent works too. */
		check_peer(fd);
		close(fd);
		fd = connect_blocking();
		echo(fd, "hello from the parent");
		close(fd);
	} else if (!strcmp(s, "dup2")) {
		int fd = connect_blocking();
		if (dup2(fd, 100) != 100)
			FAIL("dup2: %s", strerror(errno));
		close(fd);
		int d = dup(100);
		check_peer(d);
		close(d);
		check_peer(100);
		check_shimmed(100, 1);
		echo(100, "dup2 hello");
		close(100);
	} else if (!strcmp(s, "fastopen")) {
		/* TCP Fast Open: the connect happens inside sendto. */
		int fd = tcp_socket(0);
		const char *msg = "fast open hello";
		if (sendto(fd, msg, strlen(msg), MSG_FASTOPEN, (struct sockaddr *)&dst, dstlen) != (ssize_t)strlen(msg))
			FAIL("sendto MSG_FASTOPEN: %s", strerror(errno));
		check_peer(fd);
		check_shimmed(fd, 1);
		echo_want(fd, "", msg);
		close(fd);
		/* The same with sendmsg, whose message names the destination. */
		fd = tcp_socket(0);
		struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
		struct msghdr mh = {.msg_name = &dst, .msg_namelen = dstlen, .msg_iov = &iov, .msg_iovlen = 1};
		if (sendmsg(fd, &mh, MSG_FASTOPEN) != (ssize_t)strlen(msg))
			FAIL("sendmsg MSG_FASTOPEN: %s", strerror(errno));
		check_peer(fd);
		echo_want(fd, "", msg);
		close(fd);
	} else if (!strcmp(s, "refused")) {
		int fd = tcp_socket(0);
		if (connect(fd, (struct sockaddr *)&dst, dstlen) == 0 || errno != ECONNREFUSED)
			FAIL("connect: %s, want ECONNREFUSED", strerror(errno));
		close(fd);
		fd = tcp_socket(SOCK_NONBLOCK);
		if (connect(fd, (struct sockaddr *)&dst, dstlen) == 0 || errno != ECONNREFUSED)
			FAIL("non-blocking connect: %s, want ECONNREFUSED", strerror(errno));
		close(fd);
	} else if (!strcmp(s, "direct")) {
		/* Not intercepted (port not listed, or fallback tcp): a real TCP
		 * connection, non-blocking as the program asked. */
		int fd = tcp_socket(SOCK_NONBLOCK);
		if (connect_nonblocking(fd)) {
			wait_fd(fd, POLLOUT);
			check_so_error(fd);
		}
		check_peer(fd);
		check_shimmed(fd, 0);
		echo(fd, "direct hello");
		close(fd);
	} else if (!strcmp(s, "udp")) {
		/* A UDP socket to a listed port is left alone. */
		int fd = socket(family, SOCK_DGRAM, 0);
		if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0)
			FAIL("UDP connect: %s", strerror(errno));
		int v = 0;
		socklen_t l = sizeof v;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 || v != SOCK_DGRAM)
			FAIL("the UDP socket was replaced");
		struct sockaddr_storage a;
		l = sizeof a;
		if (getsockname(fd, (struct sockaddr *)&a, &l) < 0 || ((struct sockaddr_in *)&a)->sin_port == 0)
			FAIL("the UDP socket has no local port of its own");
		v = 1;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0)
			FAIL("TCP_NODELAY accepted on a UDP socket: the shim hid an error");
		close(fd);
	} else if (!strcmp(s, "unix")) {
		/* A Unix socket is left alone: argv[2] is unused, the path is in
		 * the environment. */
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		const char *path = getenv("SHIMTEST_UNIX");
		if (!path)
			FAIL("SHIMTEST_UNIX unset");
		strncpy(sun.sun_path, path, sizeof sun.sun_path - 1);
		if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
			FAIL("Unix connect: %s", strerror(errno));
		struct sockaddr_un peer;
		socklen_t l = sizeof peer;
		if (getpeername(fd, (struct sockaddr *)&peer, &l) < 0 || strcmp(peer.sun_path, path) != 0)
			FAIL("Unix getpeername changed");
		echo(fd, "unix hello");
		close(fd);
	} else {
		FAIL("unknown scenario");
	}
	return 0;
}

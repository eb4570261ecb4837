#!/usr/bin/env python3
"""Run a command as the restart tests need it (test/hub/restart.test.mjs).

    restart_launcher.py [--listen 127.0.0.1:0 | --listen unix:PATH] -- COMMAND ARGS...

- It becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so the processes a restart
  leaves behind (the old hub, and the new one it started, which outlives it) are reparented
  here and reaped here, however the machine's init behaves. Each one reaped is reported on
  stderr as "launcher: reaped PID exit CODE" (or "signal N"); the launcher exits 0 once no
  descendant is left, 3 if it had to give up waiting (60 s after its first child ended).
- With --listen, it binds and listens on that socket itself and starts the command with it
  as descriptor 3 and LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES, as systemd's socket
  activation does; it prints "launcher: socket ADDRESS" first.
"""
import ctypes
import os
import signal
import socket
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main():
    args = sys.argv[1:]
    listen = None
    if args[:1] == ['--listen']:
        listen, args = args[1], args[2:]
    if args[:1] != ['--']:
        sys.exit('usage: restart_launcher.py [--listen ADDRESS] -- COMMAND ARGS...')
    command = args[1:]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit('launcher: prctl(PR_SET_CHILD_SUBREAPER) failed')

    sock = None
    if listen is not None:
        if listen.startswith('unix:'):
            path = listen[5:]
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            where = 'unix:' + path
        else:
            host, port = listen.rsplit(':', 1)
            sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip('[]'), int(port)))
            where = '%s:%d' % (host, sock.getsockname()[1])
        sock.listen(128)
        print('launcher: socket ' + where, file=sys.stderr, flush=True)

    # SIGTERM to the launcher goes to its first child, the hub it started.
    child = os.fork()
    if child == 0:
        env = dict(os.environ)
        if sock is not None:
            if sock.fileno() == 3:
                os.set_inheritable(3, True)  # dup2(3, 3) would leave it close-on-exec
            else:
                os.dup2(sock.fileno(), 3)  # the copy is inheritable
            env.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES='launcher')
        os.execvpe(command[0], command, env)
    if sock is not None:
        sock.close()
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))

    give_up_at = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0  # nobody left: every descendant was reaped
        if pid == 0:
            if give_up_at is not None and time.monotonic() > give_up_at:
                print('launcher: descendants still running after 60 s; giving up', file=sys.stderr, flush=True)
                return 3
            time.sleep(0.01)
            continue
        how = 'exit %d' % os.WEXITSTATUS(status) if os.WIFEXITED(status) else 'signal %d' % os.WTERMSIG(status)
        print('launcher: reaped %d %s' % (pid, how), file=sys.stderr, flush=True)
        if give_up_at is None:
            give_up_at = time.monotonic() + 60


if __name__ == '__main__':
    sys.exit(main())

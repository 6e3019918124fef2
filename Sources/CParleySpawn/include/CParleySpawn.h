#ifndef CPARLEYSPAWN_H
#define CPARLEYSPAWN_H

#include <sys/types.h>

/// What a child's standard stream is: one of these, or a descriptor of ours (>= 0) that
/// becomes the stream.
enum {
    PARLEY_SPAWN_INHERIT = -1,
    PARLEY_SPAWN_NULL = -2,
};

/// Starts `path` with `argv` and `envp` (both NULL-terminated) through posix_spawn. The
/// child's stdin, stdout and stderr are `stdin_fd`, `stdout_fd`, `stderr_fd` (a descriptor,
/// PARLEY_SPAWN_INHERIT or PARLEY_SPAWN_NULL); every other descriptor is closed in the
/// child (closefrom 3, done by the C library without listing /proc/self/fd), all signals
/// are back to their default action and none is blocked. Returns 0 and sets `*pid`, or an
/// errno value.
int parley_spawn(
    pid_t *pid, const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
    int stderr_fd);

/// pipe2(fds, O_CLOEXEC): 0, or -1 with errno set.
int parley_pipe_cloexec(int fds[2]);

#endif

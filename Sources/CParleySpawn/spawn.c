// posix_spawn_file_actions_addclosefrom_np and pipe2 are GNU extensions, which Swift's
// Glibc module does not declare; this file is compiled with them in view.
#define _GNU_SOURCE
#include "CParleySpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

static int set_stream(posix_spawn_file_actions_t *actions, int given, int target) {
    if (given == PARLEY_SPAWN_INHERIT) return 0;
    if (given == PARLEY_SPAWN_NULL) {
        return posix_spawn_file_actions_addopen(actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    return posix_spawn_file_actions_adddup2(actions, given, target);
}

int parley_spawn(
    pid_t *pid, const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
    int stderr_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int result = posix_spawn_file_actions_init(&actions);
    if (result != 0) return result;
    result = posix_spawnattr_init(&attributes);
    if (result != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return result;
    }
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (result == 0) result = set_stream(&actions, stdin_fd, 0);
    if (result == 0) result = set_stream(&actions, stdout_fd, 1);
    if (result == 0) result = set_stream(&actions, stderr_fd, 2);
    if (result == 0) result = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (result == 0) result = posix_spawnattr_setsigdefault(&attributes, &all);
    if (result == 0) result = posix_spawnattr_setsigmask(&attributes, &none);
    if (result == 0) result = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (result == 0) result = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

int parley_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

/* The seed's job scheduler, written as in 2009: protect itself from the OOM killer,
 * vfork() a job, let the child unprotect itself, and execve() the job.
 * The job (argv[1..]) reports its own and its parent's value; the scheduler
 * then prints its own value after the job has run. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int set_oom_adj(const char *value)
{
	int fd = open("/proc/self/oom_adj", O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

int main(int argc, char **argv)
{
	char buf[32] = "";
	if (argc < 2) {
		fprintf(stderr, "usage: %s JOB [ARGS...]\n", argv[0]);
		return 2;
	}
	if (set_oom_adj("-17\n") != 0) {
		perror("scheduler: oom_adj -17");
		return 1;
	}
	pid_t pid = vfork();
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (pid == 0) {
		set_oom_adj("0\n"); /* the job must not be protected */
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	int fd = open("/proc/self/oom_adj", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (n > 0)
		buf[n] = 0;
	printf("scheduler %d oom_adj %s", (int)getpid(), buf);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

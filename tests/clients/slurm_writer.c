/* How Slurm's slurmstepd sets a job's OOM adjustment (src/slurmd/common/set_oomadj.c):
 * open oom_score_adj; only if it does not exist (ENOENT), fall back to the old
 * oom_adj with the value scaled from -1000..1000 to -17..15.
 * usage: slurm_writer PID SCORE_ADJ; prints which file it wrote. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[64], buf[16];
	if (argc != 3)
		return 2;
	int adj = atoi(argv[2]);
	snprintf(path, sizeof path, "/proc/%s/oom_score_adj", argv[1]);
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		if (errno != ENOENT) {
			perror(path);
			return 1;
		}
		snprintf(path, sizeof path, "/proc/%s/oom_adj", argv[1]);
		fd = open(path, O_WRONLY);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		/* scale to the old range: -1000..1000 -> -17..15 */
		if (adj < 0)
			adj = (adj * 17) / 1000;
		else
			adj = (adj * 15) / 1000;
	}
	int n = snprintf(buf, sizeof buf, "%d", adj);
	if (write(fd, buf, n) != n) {
		perror("write");
		close(fd);
		return 1;
	}
	close(fd);
	printf("wrote %s to %s\n", buf, path);
	return 0;
}

/* openssh's platform-linux.c oom_adjust_setup()/oom_adjust_restore(): an "r+" stdio
 * handle, read the old value, rewind, write the new one with a newline, close.
 * usage: sshd_oom FILE VALUE (FILE relative to /proc/self); prints old and new. */
#include <stdio.h>

int main(int argc, char **argv)
{
	char path[64];
	int old, now;
	FILE *fp;
	if (argc != 3)
		return 2;
	snprintf(path, sizeof path, "/proc/self/%s", argv[1]);
	if ((fp = fopen(path, "r+")) == NULL) {
		perror(path);
		return 1;
	}
	if (fscanf(fp, "%d", &old) != 1) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	rewind(fp);
	if (fprintf(fp, "%s\n", argv[2]) <= 0 || fclose(fp) != 0) {
		perror("write");
		return 1;
	}
	fp = fopen(path, "r");
	if (fp == NULL || fscanf(fp, "%d", &now) != 1)
		return 1;
	fclose(fp);
	printf("old %d new %d\n", old, now);
	return 0;
}

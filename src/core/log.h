/*
 * log.h - one line per event, with a level, to stderr.
 *
 * Thread-safe: every line is formatted into a local buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */
#ifndef MESHTEST_LOG_H
#define MESHTEST_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Parse "error", "warn", "info", "debug"; returns -1 on an unknown name. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

#ifndef PW_LOG_H
#define PW_LOG_H

/*
 * JSON-lines logging on stderr: one object per line with "ts", "level",
 * "msg" and then the caller's fields, e.g.
 *
 *	log_info("config reloaded", "file", path, NULL);
 *
 * Fields are pairs of plain C strings ending in NULL.  Secrets never reach
 * this API: they live in struct secret (common/secret.h), which has no way
 * to turn back into a string except inside the HTTP client that sends it.
 */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Drop messages below level (default LOG_INFO).  PIPEWARDEN_LOG_LEVEL
 * (debug, info, warn, error) sets it at start through log_init(). */
void	log_set_level(enum log_level level);
void	log_init(const char *program);

void	log_msg(enum log_level level, const char *msg, ...)
	    __attribute__((sentinel));
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)

#endif

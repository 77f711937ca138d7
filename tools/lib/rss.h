/* rss.h — how much memory this process holds, for -v and the benchmark.
 *
 * Linux reports the resident set (VmRSS) and its high-water mark (VmHWM) in
 * /proc/self/status, and lets a process reset that mark (writing "5" to
 * /proc/self/clear_refs, Linux >= 4.0), which gives the peak of one stage.
 * Elsewhere only getrusage's ru_maxrss is available (kilobytes on Linux and
 * the BSDs, bytes on macOS): a peak since the start that cannot be reset.
 *
 * Resetting the mark resets ru_maxrss too, so a program that takes stage
 * peaks keeps the overall peak itself: struct rss_peaks does that. */
#ifndef ONESTEP_TOOLS_RSS_H
#define ONESTEP_TOOLS_RSS_H

/* Bytes, or -1 where the system does not say. */
long long rss_current(void);
/* The file-backed part of it (RssFile: mapped weights), -1 where not said. */
long long rss_file_current(void);
long long rss_peak(void);
/* Start a new high-water mark: 0, or -1 where it cannot be reset. */
int rss_reset_peak(void);

/* Stage peaks. rss_stage_begin resets the mark (folding the peak so far
 * into `overall`); rss_stage_end returns the stage's peak (the peak so far
 * when the mark cannot be reset: then `resettable` is 0). */
struct rss_peaks {
    long long overall;
    int resettable;
};
void rss_peaks_init(struct rss_peaks *r);
void rss_stage_begin(struct rss_peaks *r);
long long rss_stage_end(struct rss_peaks *r);
long long rss_overall(struct rss_peaks *r);

#endif

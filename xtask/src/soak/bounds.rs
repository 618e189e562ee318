//! The growth a soak tolerates, and the checks that hold the measurements against it.
//!
//! Memory and descriptors are compared between two windows of the load: the warm-up (its first
//! fifth, when buffers, pools and caches fill up) and the end (its last fifth). Growth of a process
//! that does the same work in both is a leak; the bounds leave room for the noise of a changing mix
//! of uploads, not for a trend. After the load, the mock must be back to what it held idle.

use super::sampler::Sample;

/// The share of the load, from its start, that is warm-up.
pub(crate) const WARM_UP_FRACTION: f64 = 0.2;
/// The share of the load, up to its end, that is compared with the warm-up.
pub(crate) const END_FRACTION: f64 = 0.2;

/// Growth of a resident set tolerated: this many MiB plus this percentage of the warm-up value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RssBound {
    /// Fixed allowance, MiB.
    pub mib: u64,
    /// Allowance proportional to the warm-up value, percent.
    pub percent: u64,
}

impl RssBound {
    /// The largest value allowed after warming up at `base` bytes.
    pub(crate) fn limit(self, base: u64) -> u64 {
        base + (self.mib << 20) + base * self.percent / 100
    }
}

/// The mock's resident set: the median of the end window against that of the warm-up.
pub(crate) const MOCK_RSS: RssBound = RssBound {
    mib: 32,
    percent: 25,
};
/// The peak resident set of one kind of `ossup` run: the median over the runs that ended in the end
/// window against the median over those that ended in the warm-up.
pub(crate) const CLIENT_PEAK_RSS: RssBound = RssBound {
    mib: 16,
    percent: 25,
};
/// The mock's open descriptors: the median of the end window may pass the warm-up's most by this
/// many (each connection is one; the number of clients is the same throughout).
pub(crate) const MOCK_FD_GROWTH: u64 = 16;
/// The most descriptors of one kind of `ossup` run in the end window may pass those of the warm-up
/// by this many.
pub(crate) const CLIENT_FD_GROWTH: u64 = 8;
/// Once every client has exited, the mock must hold no more descriptors than before the load, plus
/// this many, and no connection.
pub(crate) const MOCK_FD_SETTLED: u64 = 2;
/// Fewer runs of a kind than this in a window are too few for a median to mean anything; the
/// kind's client check says so instead of comparing.
pub(crate) const MIN_RUNS_PER_WINDOW: usize = 3;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    /// What was checked.
    pub name: String,
    /// The numbers, in words.
    pub detail: String,
    /// Whether it held.
    pub ok: bool,
}

/// Which window a moment of the load falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// The first [`WARM_UP_FRACTION`].
    WarmUp,
    /// Between the two.
    Middle,
    /// The last [`END_FRACTION`].
    End,
}

/// The window of `at_secs` in a load of `load_secs`. The jobs still running when the load ends,
/// until they end, belong to its end.
pub(crate) fn window(at_secs: f64, load_secs: f64) -> Window {
    if at_secs < load_secs * WARM_UP_FRACTION {
        Window::WarmUp
    } else if at_secs >= load_secs * (1.0 - END_FRACTION) {
        Window::End
    } else {
        Window::Middle
    }
}

/// The median of `values` (the upper one of an even count); `None` when empty.
pub(crate) fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Bytes as MiB with one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// The mock's resident set and descriptors, end window against warm-up, from the timeline of a load
/// during which jobs were started for `load_secs` and the last of them ended at `drained_secs`
/// (samples after that are of a mock with no client).
pub(crate) fn check_mock(timeline: &[Sample], load_secs: f64, drained_secs: f64) -> Vec<Check> {
    let in_window = |w: Window| -> Vec<(u64, u64)> {
        timeline
            .iter()
            .filter(|s| s.at_secs <= drained_secs && window(s.at_secs, load_secs) == w)
            .filter_map(|s| s.mock.map(|m| (m.rss, m.fds)))
            .collect()
    };
    let (warm, end) = (in_window(Window::WarmUp), in_window(Window::End));
    let rss = |v: &[(u64, u64)]| median(v.iter().map(|(rss, _)| *rss).collect());
    let fds_median = |v: &[(u64, u64)]| median(v.iter().map(|(_, fds)| *fds).collect());
    let warm_fds_max = warm.iter().map(|(_, fds)| *fds).max();
    let rss_check = match (rss(&warm), rss(&end)) {
        (Some(base), Some(last)) => {
            let limit = MOCK_RSS.limit(base);
            Check {
                name: "mock RSS".to_owned(),
                detail: format!(
                    "end median {} against warm-up median {} (bound {}: +{} MiB +{} %)",
                    mib(last),
                    mib(base),
                    mib(limit),
                    MOCK_RSS.mib,
                    MOCK_RSS.percent
                ),
                ok: last <= limit,
            }
        }
        _ => too_few("mock RSS", warm.len(), end.len(), false),
    };
    let fd_check = match (warm_fds_max, fds_median(&end)) {
        (Some(base), Some(last)) => Check {
            name: "mock file descriptors".to_owned(),
            detail: format!(
                "end median {last} against warm-up most {base} (bound {}: +{MOCK_FD_GROWTH})",
                base + MOCK_FD_GROWTH
            ),
            ok: last <= base + MOCK_FD_GROWTH,
        },
        _ => too_few("mock file descriptors", warm.len(), end.len(), false),
    };
    vec![rss_check, fd_check]
}

/// The mock once the clients are gone: descriptors back to `idle_fds` (what it held before the load)
/// and no connection left.
pub(crate) fn check_settled(idle_fds: u64, settled_fds: u64, connections: u64) -> Check {
    Check {
        name: "mock after the load".to_owned(),
        detail: format!(
            "{settled_fds} file descriptors (idle before the load: {idle_fds}, bound {}), {connections} connections",
            idle_fds + MOCK_FD_SETTLED
        ),
        ok: settled_fds <= idle_fds + MOCK_FD_SETTLED && connections == 0,
    }
}

/// One finished `ossup` run, as the client checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientRun {
    /// The window it ended in.
    pub window: Window,
    /// Its peak resident set, bytes.
    pub peak_rss: u64,
    /// Its most file descriptors.
    pub fds: u64,
}

/// The runs of one kind (`kind` names it), end window against warm-up.
pub(crate) fn check_clients(kind: &str, runs: &[ClientRun]) -> Vec<Check> {
    // A run that ended before the sampler first read it has no reading (0 bytes, 0 descriptors): it
    // is left out, not taken for a run that used nothing, which would make the bound of a window
    // whose runs were all too quick to read 16 MiB flat.
    let of = |w: Window| -> Vec<ClientRun> {
        runs.iter()
            .filter(|r| r.window == w && r.peak_rss > 0)
            .copied()
            .collect()
    };
    let (warm, end) = (of(Window::WarmUp), of(Window::End));
    let rss_name = format!("ossup {kind}: peak RSS");
    let fd_name = format!("ossup {kind}: file descriptors");
    if warm.len() < MIN_RUNS_PER_WINDOW || end.len() < MIN_RUNS_PER_WINDOW {
        return vec![too_few(&rss_name, warm.len(), end.len(), true)];
    }
    let peak = |v: &[ClientRun]| median(v.iter().map(|r| r.peak_rss).collect()).unwrap_or(0);
    let most_fds = |v: &[ClientRun]| v.iter().map(|r| r.fds).max().unwrap_or(0);
    let (base, last) = (peak(&warm), peak(&end));
    let limit = CLIENT_PEAK_RSS.limit(base);
    let (base_fds, last_fds) = (most_fds(&warm), most_fds(&end));
    vec![
        Check {
            name: rss_name,
            detail: format!(
                "median of {} runs at the end {} against {} of the warm-up (bound {}: +{} MiB +{} %)",
                end.len(),
                mib(last),
                mib(base),
                mib(limit),
                CLIENT_PEAK_RSS.mib,
                CLIENT_PEAK_RSS.percent
            ),
            ok: last <= limit,
        },
        Check {
            name: fd_name,
            detail: format!(
                "at most {last_fds} at the end against {base_fds} in the warm-up (bound {}: +{CLIENT_FD_GROWTH})",
                base_fds + CLIENT_FD_GROWTH
            ),
            ok: last_fds <= base_fds + CLIENT_FD_GROWTH,
        },
    ]
}

/// A comparison without enough data in a window. For a kind of client run it counts as held (`ok`): a
/// short soak has few runs of each kind and says so rather than judging from one or two numbers. For
/// the mock, sampled throughout, it is a failure: the harness could not read it.
fn too_few(name: &str, warm: usize, end: usize, ok: bool) -> Check {
    Check {
        name: name.to_owned(),
        detail: format!(
            "not compared: {warm} readings in the warm-up, {end} at the end (at least {MIN_RUNS_PER_WINDOW} of runs, 1 of samples, in each); run longer"
        ),
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::sampler::ProcessReading;

    fn sample(at_secs: f64, rss_mib: u64, fds: u64) -> Sample {
        Sample {
            at_secs,
            mock: Some(ProcessReading {
                rss: rss_mib << 20,
                peak_rss: rss_mib << 20,
                fds,
            }),
            connections: 0,
            clients: 0,
            clients_rss: 0,
        }
    }

    #[test]
    fn windows_split_the_load_into_warm_up_middle_and_end() {
        assert_eq!(window(0.0, 100.0), Window::WarmUp);
        assert_eq!(window(19.9, 100.0), Window::WarmUp);
        assert_eq!(window(20.0, 100.0), Window::Middle);
        assert_eq!(window(80.0, 100.0), Window::End);
        assert_eq!(window(100.0, 100.0), Window::End);
        assert_eq!(window(130.0, 100.0), Window::End);
    }

    #[test]
    fn medians_take_the_upper_middle_and_nothing_of_nothing() {
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(3));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn a_mock_whose_memory_stays_level_passes_and_one_that_keeps_growing_fails() {
        let level: Vec<Sample> = (0..100u32)
            .map(|i| sample(f64::from(i), 40 + u64::from(i % 3), 20 + u64::from(i % 5)))
            .collect();
        let checks = check_mock(&level, 100.0, 100.0);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        // 1 MiB a second: 40 MiB at the start, about 130 MiB at the end.
        let leaking: Vec<Sample> = (0..100u32)
            .map(|i| sample(f64::from(i), 40 + u64::from(i), 20))
            .collect();
        let checks = check_mock(&leaking, 100.0, 100.0);
        assert!(!checks[0].ok, "{checks:?}");
        assert!(checks[0].detail.contains("bound"), "{checks:?}");
        assert!(checks[1].ok, "{checks:?}");
        // A descriptor a second.
        let fd_leak: Vec<Sample> = (0..100u32)
            .map(|i| sample(f64::from(i), 40, 20 + u64::from(i)))
            .collect();
        assert!(!check_mock(&fd_leak, 100.0, 100.0)[1].ok);
    }

    #[test]
    fn samples_while_the_last_jobs_end_belong_to_the_end_and_later_ones_to_nothing() {
        let mut timeline: Vec<Sample> = (0..100u32).map(|i| sample(f64::from(i), 40, 20)).collect();
        timeline.push(sample(150.0, 400, 400));
        assert!(check_mock(&timeline, 100.0, 110.0).iter().all(|c| c.ok));
        timeline.push(sample(105.0, 400, 400));
        timeline.push(sample(106.0, 400, 400));
        timeline.push(sample(107.0, 400, 400));
        assert!(check_mock(&timeline, 100.0, 110.0).iter().all(|c| c.ok));
        for i in 0..30u32 {
            timeline.push(sample(100.0 + f64::from(i) / 10.0, 400, 400));
        }
        assert!(check_mock(&timeline, 100.0, 110.0).iter().all(|c| !c.ok));
    }

    #[test]
    fn the_settled_mock_must_be_back_to_its_idle_descriptors_with_no_connection() {
        assert!(check_settled(10, 12, 0).ok);
        assert!(!check_settled(10, 13, 0).ok);
        assert!(!check_settled(10, 10, 1).ok);
    }

    #[test]
    fn clients_are_compared_per_kind_when_each_window_has_enough_runs() {
        let run = |window, mib: u64, fds| ClientRun {
            window,
            peak_rss: mib << 20,
            fds,
        };
        let steady = vec![
            run(Window::WarmUp, 20, 12),
            run(Window::WarmUp, 22, 12),
            run(Window::WarmUp, 21, 13),
            run(Window::Middle, 90, 50),
            run(Window::End, 21, 12),
            run(Window::End, 23, 14),
            run(Window::End, 22, 12),
        ];
        let checks = check_clients("tree", &steady);
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        let mut grown = steady.clone();
        for r in grown.iter_mut().filter(|r| r.window == Window::End) {
            r.peak_rss += 64 << 20;
            r.fds += 20;
        }
        assert!(check_clients("tree", &grown).iter().all(|c| !c.ok));
        let few = &steady[..4];
        let checks = check_clients("tree", few);
        assert_eq!(checks.len(), 1);
        assert!(checks[0].ok && checks[0].detail.contains("not compared"));
        // Runs too quick to be read are no readings: a warm-up of them is too few to compare with.
        let mut unread = steady.clone();
        for r in unread.iter_mut().filter(|r| r.window == Window::WarmUp) {
            (r.peak_rss, r.fds) = (0, 0);
        }
        let checks = check_clients("small file", &unread);
        assert_eq!(checks.len(), 1);
        assert!(
            checks[0].ok && checks[0].detail.contains("not compared"),
            "{checks:?}"
        );
    }

    #[test]
    fn bounds_add_a_fixed_and_a_proportional_allowance() {
        assert_eq!(MOCK_RSS.limit(100 << 20), (100 + 32 + 25) << 20);
        assert_eq!(CLIENT_PEAK_RSS.limit(0), 16 << 20);
    }
}

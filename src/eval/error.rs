//! The error type shared by every metric in this crate.

use std::error::Error;
use std::fmt;

/// Why a metric could not be computed.
///
/// Messages name the parameter or the kind of input at fault and may carry
/// positions (stream and element indices), but never labels, names or other
/// caller data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricError {
    /// The metric is undefined for this input, e.g. ROC AUC without a single
    /// negative frame.
    EmptyInput {
        /// What the input lacks, e.g. `"negative frames"`.
        what: &'static str,
    },
    /// A score is NaN or infinite.
    NonFiniteScore {
        /// Index of the stream, for inputs made of several streams.
        stream: Option<usize>,
        /// Index of the element within its slice (or within its stream).
        index: usize,
    },
    /// An interval ends before it starts (`end_us < start_us`).
    InvertedInterval {
        /// Which kind of interval: `"truth"` or `"prediction"`.
        what: &'static str,
        /// Index of the stream, for inputs made of several streams.
        stream: Option<usize>,
        /// Index of the interval within its slice.
        index: usize,
    },
    /// A parameter lies outside its valid range.
    OutOfRange {
        /// Name of the parameter, as spelled in the API.
        parameter: &'static str,
        /// The valid range in words, e.g. `"in (0, 1]"`.
        expected: &'static str,
    },
    /// Frame timestamps of a stream do not strictly increase.
    UnorderedTimestamps {
        /// Index of the stream.
        stream: usize,
        /// Index of the first frame whose timestamp is not greater than the
        /// previous one.
        index: usize,
    },
}

/// Writes ` in stream N` when a stream index is known.
fn write_stream(f: &mut fmt::Formatter<'_>, stream: Option<usize>) -> fmt::Result {
    match stream {
        Some(s) => write!(f, " in stream {s}"),
        None => Ok(()),
    }
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricError::EmptyInput { what } => {
                write!(f, "metric undefined: the input has no {what}")
            }
            MetricError::NonFiniteScore { stream, index } => {
                write!(f, "score at index {index}")?;
                write_stream(f, *stream)?;
                write!(f, " is NaN or infinite")
            }
            MetricError::InvertedInterval {
                what,
                stream,
                index,
            } => {
                write!(f, "{what} interval at index {index}")?;
                write_stream(f, *stream)?;
                write!(f, " ends before it starts")
            }
            MetricError::OutOfRange {
                parameter,
                expected,
            } => write!(
                f,
                "parameter `{parameter}` out of range: expected {expected}"
            ),
            MetricError::UnorderedTimestamps { stream, index } => write!(
                f,
                "frame timestamps in stream {stream} do not strictly increase at index {index}"
            ),
        }
    }
}

impl Error for MetricError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catches a Display arm that drops the parameter name or the position.
    #[test]
    fn messages_name_parameter_and_position() {
        let e = MetricError::OutOfRange {
            parameter: "bins",
            expected: "an integer in [1, 1048576]",
        };
        assert_eq!(
            e.to_string(),
            "parameter `bins` out of range: expected an integer in [1, 1048576]"
        );
        let e = MetricError::NonFiniteScore {
            stream: Some(2),
            index: 7,
        };
        assert_eq!(
            e.to_string(),
            "score at index 7 in stream 2 is NaN or infinite"
        );
        let e = MetricError::NonFiniteScore {
            stream: None,
            index: 0,
        };
        assert_eq!(e.to_string(), "score at index 0 is NaN or infinite");
        let e = MetricError::InvertedInterval {
            what: "truth",
            stream: Some(0),
            index: 3,
        };
        assert_eq!(
            e.to_string(),
            "truth interval at index 3 in stream 0 ends before it starts"
        );
        let e = MetricError::EmptyInput {
            what: "negative frames",
        };
        assert_eq!(
            e.to_string(),
            "metric undefined: the input has no negative frames"
        );
        let e = MetricError::UnorderedTimestamps {
            stream: 1,
            index: 4,
        };
        assert!(e.to_string().contains("stream 1"));
        assert!(e.to_string().contains("index 4"));
    }

    #[test]
    fn is_a_std_error() {
        let e: Box<dyn Error> = Box::new(MetricError::EmptyInput { what: "frames" });
        assert!(e.source().is_none());
    }
}

//! A request head, parsed by `httparse`, and what its fields say about the
//! body and the connection (RFC 9112, 6 and 9; RFC 9110, 7.2 and 8.6).

use std::mem::MaybeUninit;

use super::reply::Status;

/// The most field lines a head may have: 431 past it. `httparse` fills a
/// slice of this many; it is hyper's default too.
pub const MAX_FIELDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the body of a request is delimited (RFC 9112, 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    Empty,
    /// `Content-Length`: this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: chunks until a last, empty one.
    Chunked,
}

/// A request head: slices of the head's bytes, and what its fields mean.
#[derive(Debug)]
pub struct Head<'h, 'b> {
    pub method: &'b str,
    pub target: &'b str,
    pub version: Version,
    pub fields: &'h [httparse::Header<'b>],
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl<'h, 'b> Head<'h, 'b> {
    /// Parses a head (with the empty line that ends it) into `fields`.
    /// Empty lines before the request line are skipped by `httparse`.
    pub fn parse(
        bytes: &'b [u8],
        fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
    ) -> Result<Self, Status> {
        let mut request = httparse::Request::new(&mut []);
        match request.parse_with_uninit_headers(bytes, fields) {
            Ok(httparse::Status::Complete(length)) if length == bytes.len() => {}
            // The codec hands out heads that end at their empty line: this
            // cannot happen, but would be a head that is not one.
            Ok(_) => return Err(Status::BadRequest),
            Err(httparse::Error::TooManyHeaders) => return Err(Status::HeaderFieldsTooLarge),
            Err(httparse::Error::Version) if names_another_http_version(bytes) => {
                return Err(Status::VersionNotSupported)
            }
            Err(_) => return Err(Status::BadRequest),
        }
        let (Some(method), Some(target), Some(version)) =
            (request.method, request.path, request.version)
        else {
            return Err(Status::BadRequest);
        };
        let version = if version == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        let fields: &'h [httparse::Header<'b>] = request.headers;

        let mut content_length = None;
        let mut codings = TransferCodings::default();
        let mut hosts = 0;
        let mut keep_alive = version == Version::Http11;
        let mut expect_continue = false;
        for field in fields {
            let name = field.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = parse_content_length(field.value).ok_or(Status::BadRequest)?;
                // Repeated, they must agree (RFC 9110, 8.6).
                if content_length.is_some_and(|seen| seen != length) {
                    return Err(Status::BadRequest);
                }
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                codings.add(field.value);
            } else if name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if name.eq_ignore_ascii_case("connection") {
                for option in list_elements(field.value) {
                    if option.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if option.eq_ignore_ascii_case(b"keep-alive")
                        && version == Version::Http10
                    {
                        keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("expect") {
                // An HTTP/1.0 client cannot know 100 Continue (RFC 9110, 10.1.1).
                expect_continue |= version == Version::Http11
                    && trim(field.value).eq_ignore_ascii_case(b"100-continue");
            }
        }
        // RFC 9112, 3.2: exactly one Host in HTTP/1.1, at most one before.
        if hosts > 1 || (hosts == 0 && version == Version::Http11) {
            return Err(Status::BadRequest);
        }
        let framing = match (codings.present, content_length) {
            (false, None) => Framing::Empty,
            (false, Some(length)) => Framing::Length(length),
            // Both, or an HTTP/1.0 message with a transfer coding: framing
            // two peers may read differently, the stuff of request
            // smuggling (RFC 9112, 6.1 and 6.3).
            (true, Some(_)) => return Err(Status::BadRequest),
            (true, None) if version == Version::Http10 => return Err(Status::BadRequest),
            (true, None) if codings.unknown => return Err(Status::NotImplemented),
            // chunked must be the last coding, and applied once.
            (true, None) if codings.chunked != 1 || !codings.last_is_chunked => {
                return Err(Status::BadRequest)
            }
            (true, None) => Framing::Chunked,
        };
        Ok(Head {
            method,
            target,
            version,
            fields,
            framing,
            keep_alive,
            expect_continue,
        })
    }
}

/// What the `Transfer-Encoding` fields say, all of them taken in order as
/// one list (RFC 9112, 6.1).
#[derive(Debug, Default)]
struct TransferCodings {
    present: bool,
    /// How many times `chunked` was named.
    chunked: usize,
    last_is_chunked: bool,
    /// A coding other than `chunked`: this server decodes none.
    unknown: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for coding in list_elements(value) {
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            self.chunked += usize::from(is_chunked);
            self.unknown |= !is_chunked;
            self.last_is_chunked = is_chunked;
        }
    }
}

/// `Content-Length`: digits, or a list of the same digits repeated
/// (`5, 5`, which RFC 9110, 8.6 lets a recipient take as `5`). `None` for
/// anything else, or a number that does not fit in a `u64`.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for element in value.split(|&byte| byte == b',').map(trim) {
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let parsed: u64 = std::str::from_utf8(element).ok()?.parse().ok()?;
        if length.is_some_and(|seen| seen != parsed) {
            return None;
        }
        length = Some(parsed);
    }
    length
}

/// The elements of a comma-separated field value, trimmed, empty ones
/// skipped (RFC 9110, 5.6.1).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim)
        .filter(|element| !element.is_empty())
}

/// `value` without the spaces and tabs around it.
fn trim(value: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = value.iter().position(|byte| !is_space(byte));
    let end = value.iter().rposition(|byte| !is_space(byte));
    match (start, end) {
        (Some(start), Some(end)) => &value[start..=end],
        _ => &[],
    }
}

/// Whether `bytes`, the start of a head that has not ended yet, may still
/// begin a request: `httparse` finds nothing wrong in its request line so
/// far. Bytes that cannot (a TLS ClientHello sent to this plain-text port,
/// say) are refused as they come, not when the idle timeout or the head's
/// limit is reached. Costs a parse of the request line: fields are not
/// looked at (no room is given for any).
pub fn may_begin_a_request(bytes: &[u8]) -> bool {
    let mut request = httparse::Request::new(&mut []);
    match request.parse(bytes) {
        // A field line comes after a whole request line: left for the end
        // of the head.
        Ok(_) | Err(httparse::Error::TooManyHeaders) => true,
        // `HTTP/2` may become `HTTP/2.0`, a 505 once the head is whole.
        Err(httparse::Error::Version) => {
            !bytes.contains(&b'\n') || names_another_http_version(bytes)
        }
        Err(_) => false,
    }
}

/// Whether the request line ends in a well-formed `HTTP/d.d` (that
/// `httparse` refused, so not 1.0 or 1.1): 505 rather than 400.
fn names_another_http_version(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .unwrap_or(head.len());
    let line = head[start..]
        .split(|&byte| byte == b'\n')
        .next()
        .unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&byte| byte == b' ').next().unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

//! macOS: a clicked `tlschat://` link reaches the app as a `GURL` Apple
//! Event, never as an argument. This module receives that event and puts
//! the link into [`open_url::global`](crate::open_url::global).
//!
//! ```text
//! LaunchServices (Info.plist CFBundleURLTypes) ─GURL event─▶ UrlHandler
//!   handleGetURLEvent:withReplyEvent: ─ the direct object's string ─▶ Inbox
//! ```
//!
//! winit owns the application delegate (and panics if it is replaced), so
//! the handler is an object of its own, registered with the shared
//! `NSAppleEventManager` before the event loop starts; registered that
//! early it also receives the link the app was launched with. The typed
//! `setEventHandler…` and `paramDescriptorForKeyword:` bindings need a
//! crate outside our lockfile (objc2-core-services), so both are sent with
//! `msg_send!` and their four-character codes as `u32`.

use objc2::rc::Retained;
use objc2::runtime::{AnyObject, NSObject};
use objc2::{define_class, msg_send, sel, AnyThread};
use objc2_foundation::{NSAppleEventDescriptor, NSAppleEventManager};

/// `'GURL'`: the event class (kInternetEventClass) and id (kAEGetURL) of
/// "open this URL".
const GURL: u32 = u32::from_be_bytes(*b"GURL");
/// `'----'` (keyDirectObject): the event's parameter holding the URL.
const DIRECT_OBJECT: u32 = u32::from_be_bytes(*b"----");

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and UrlHandler
    // implements no Drop.
    #[unsafe(super(NSObject))]
    #[name = "TlschatUrlHandler"]
    struct UrlHandler;

    impl UrlHandler {
        #[unsafe(method(handleGetURLEvent:withReplyEvent:))]
        fn handle_get_url(
            &self,
            event: Option<&NSAppleEventDescriptor>,
            _reply: Option<&AnyObject>,
        ) {
            let Some(event) = event else { return };
            // SAFETY: paramDescriptorForKeyword: takes an AEKeyword (a
            // FourCharCode, u32) and returns a descriptor or nil.
            let url: Option<Retained<NSAppleEventDescriptor>> =
                unsafe { msg_send![event, paramDescriptorForKeyword: DIRECT_OBJECT] };
            if let Some(text) = url.and_then(|d| d.stringValue()) {
                crate::open_url::global().push(text.to_string());
            }
        }
    }
);

impl UrlHandler {
    fn new() -> Retained<UrlHandler> {
        let this = UrlHandler::alloc().set_ivars(());
        // SAFETY: NSObject's init, on a freshly allocated object.
        unsafe { msg_send![super(this), init] }
    }
}

/// Registers the handler; call on the main thread before the event loop
/// runs. The handler lives as long as the process (the event manager does
/// not retain it).
pub fn register() {
    let handler = UrlHandler::new();
    let manager = NSAppleEventManager::sharedAppleEventManager();
    // SAFETY: the selector is the handler's method above, with the
    // signature the event manager calls; the class and id are
    // AEEventClass and AEEventID (FourCharCode, u32); `handler` is kept
    // alive for good below.
    unsafe {
        let _: () = msg_send![
            &manager,
            setEventHandler: &*handler,
            andSelector: sel!(handleGetURLEvent:withReplyEvent:),
            forEventClass: GURL,
            andEventID: GURL
        ];
    }
    std::mem::forget(handler);
}

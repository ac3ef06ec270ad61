//! `Packhost::CancelToken`: the core's `CancelToken` as a Ruby object, which `Pack#call`
//! hands to the core and any Ruby thread cancels while the call runs without the GVL.
//!
//! Cancelling only stores an atomic flag and runs the engines' hooks under the token's own
//! mutex, none of which waits for the GVL, so `cancel` is safe from any Ruby thread while
//! calls with the token run on others.

use magnus::{function, method, prelude::*, Error, RModule, Ruby};

use crate::errors::guard;

/// A core token owned by a Ruby object. Each call gets a clone sharing its state, so a
/// call never depends on this object outliving it.
#[magnus::wrap(class = "Packhost::CancelToken", free_immediately, size)]
pub(crate) struct RbCancelToken {
    token: packhost::CancelToken,
}

pub(crate) fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("CancelToken", ruby.class_object())?;
    // Tokens come only from `CancelToken.new`; an object made by `allocate` would hold none.
    class.undef_default_alloc_func();
    class.define_singleton_method("new", function!(RbCancelToken::new, 0))?;
    class.define_method("cancel", method!(RbCancelToken::cancel, 0))?;
    class.define_method("cancelled?", method!(RbCancelToken::is_cancelled, 0))?;
    Ok(())
}

impl RbCancelToken {
    /// A clone of the core token, for one call's `CallOptions`.
    pub(crate) fn token(&self) -> packhost::CancelToken {
        self.token.clone()
    }

    /// `CancelToken.new`: a token nothing has cancelled yet.
    fn new(ruby: &Ruby) -> Result<Self, Error> {
        guard(ruby, |_| {
            Ok(RbCancelToken {
                token: packhost::CancelToken::new(),
            })
        })
    }

    /// `#cancel`: ends every call running with the token, and fails every later one.
    fn cancel(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        guard(ruby, |_| {
            rb_self.token.cancel();
            Ok(())
        })
    }

    /// `#cancelled?`: whether `#cancel` has been called.
    fn is_cancelled(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        guard(ruby, |_| Ok(rb_self.token.is_cancelled()))
    }
}

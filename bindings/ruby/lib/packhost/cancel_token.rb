# frozen_string_literal: true

# Packhost::CancelToken: stop running calls from another thread. The native extension
# defines the whole class; this file documents it.
module Packhost
  # A handle that stops the calls made with it (the +cancel:+ keyword of {Pack#call},
  # {Pack#pre} and {Pack#post}). Cancel it from another thread while the calls run: each
  # ends with {CancelledError}, within about a millisecond on the native engine. Interrupts
  # (Thread#raise, Timeout.timeout) cannot cut a call short; a token can.
  #
  # Cancelling is sticky: a call made later with the same token fails at once with
  # {CancelledError}, without running. Use a new token for each unit of work that may be
  # cancelled on its own; one token may serve many calls, on any threads, at once.
  #
  # @example Stop a call from the main thread
  #   token = Packhost::CancelToken.new
  #   worker = Thread.new do
  #     pack.call("crunch", input, cancel: token)
  #   rescue Packhost::CancelledError
  #     :stopped
  #   end
  #   token.cancel
  #   worker.value  # => :stopped
  class CancelToken
    # @!method self.new
    #   @return [CancelToken] a token nothing has cancelled yet
    # @!method cancel
    #   Ends every call running with this token, and fails every later call made with it.
    #   Safe from any thread; cancelling again does nothing more.
    #   @return [nil]
    # @!method cancelled?
    #   @return [Boolean] whether {#cancel} has been called
  end
end

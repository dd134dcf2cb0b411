// IntrusiveList: a doubly linked list threaded through its elements. It is the one
// list of every queue and registry in coring (the loop's waiting operations and remote
// cancels, an Event's waiters, the blocking pool's jobs, a scope's children), and public for the
// same use in applications (a server's registry of connections, say). It allocates nothing, and an
// element leaves it in O(1) without knowing which list holds it.
//
// An element holds one ListHook per list it can be in, and the list names the hook:
//
//   struct Job { ListHook hook; ... };
//   IntrusiveList<Job, &Job::hook> jobs;
//
// The list is circular around a root hook inside the list object, so no link is ever
// null while linked: push and unlink are branch-free, and a hook's prev is null
// exactly when it is in no list (linked()). That is also why a list cannot be copied
// or moved — its elements point at its root — and why it must be empty when it is
// destroyed. A copied or moved hook starts unlinked; an element is destroyed (and so
// moved from, in a container that relocates) only while out of every list. Debug builds
// assert each of these rules; release builds trust them.
//
// The list does no locking: whoever owns it says what guards it.
#pragma once

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>

namespace coring {

class ListHook {
 public:
  // Unlinked. Only prev is stored: linked() reads it, and linking writes both.
  ListHook() noexcept : prev_(nullptr) { poison_next(); }
  // For a record built on a hot path whose owner knows without linked() whether it is
  // in the list (an Operation's state says "queued"): only prev is stored. It is stored
  // in every build: the destructor's check may come from a program built without NDEBUG
  // while the constructor ran in a library built with it (one inline function, two
  // definitions), and it must find the hook unlinked.
  struct Unset {};
  explicit ListHook(Unset) noexcept : prev_(nullptr) { poison_next(); }
  ListHook(const ListHook&) noexcept : ListHook() {}
  ListHook& operator=(const ListHook&) = delete;
  // An element destroyed while linked (or moved away and its source destroyed, as a
  // growing std::vector does) would leave its list pointing at freed memory: debug
  // builds stop there instead.
  ~ListHook() { assert(!linked() && "an element destroyed while in a list: unlink it first"); }

  // In a list.
  [[nodiscard]] bool linked() const noexcept { return prev_ != nullptr; }

 private:
  template <typename T, ListHook T::*>
  friend class IntrusiveList;

  // An unlinked hook's next is never read; debug builds make a walk through it fault.
  void poison_next() noexcept {
#ifndef NDEBUG
    next_ = reinterpret_cast<ListHook*>(std::uintptr_t{0xdead'0000'0000'dead});
#endif
  }

  ListHook* prev_;
  ListHook* next_;
};

template <typename T, ListHook T::*Hook>
class IntrusiveList {
  // The element that holds `hook`. A data member pointer is its member's byte offset
  // in the Itanium C++ ABI, which GCC and Clang use on Linux.
  static_assert(sizeof(ListHook T::*) == sizeof(std::ptrdiff_t));

 public:
  IntrusiveList() noexcept { root_.prev_ = root_.next_ = &root_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() {
    assert(empty() && "a list destroyed with elements still linked");
    root_.prev_ = nullptr;  // the root is no element
  }

  [[nodiscard]] bool empty() const noexcept { return root_.next_ == &root_; }
  // The first and last element; the list must not be empty.
  [[nodiscard]] T& front() const noexcept {
    assert(!empty());
    return owner(root_.next_);
  }
  [[nodiscard]] T& back() const noexcept {
    assert(!empty());
    return owner(root_.prev_);
  }
  // The element after `element`, or nullptr at the end: a walk may unlink the element it
  // stands on once it has taken the next.
  [[nodiscard]] T* next(const T& element) const noexcept {
    const ListHook* hook = (element.*Hook).next_;
    return hook == &root_ ? nullptr : &owner(hook);
  }
  [[nodiscard]] T* first() const noexcept { return empty() ? nullptr : &front(); }

  void push_back(T& element) noexcept { link_before(root_, element.*Hook); }
  void push_front(T& element) noexcept { link_before(*root_.next_, element.*Hook); }
  // Unlinks and returns the first element; the list must not be empty.
  T& pop_front() noexcept {
    T& element = front();
    unlink(element);
    return element;
  }
  // Takes `element` out of whichever list holds it; it must be in one.
  static void unlink(T& element) noexcept {
    ListHook& hook = element.*Hook;
    assert(hook.linked() && "unlink of an element in no list");
    hook.prev_->next_ = hook.next_;
    hook.next_->prev_ = hook.prev_;
    hook.prev_ = nullptr;
    hook.poison_next();
  }
  [[nodiscard]] static bool linked(const T& element) noexcept { return (element.*Hook).linked(); }
  // Moves every element of `other` to the back of this list, in order; O(1).
  void splice_back(IntrusiveList& other) noexcept {
    if (other.empty()) return;
    ListHook* first = other.root_.next_;
    ListHook* last = other.root_.prev_;
    other.root_.prev_ = other.root_.next_ = &other.root_;
    first->prev_ = root_.prev_;
    root_.prev_->next_ = first;
    last->next_ = &root_;
    root_.prev_ = last;
  }

 private:
  static void link_before(ListHook& at, ListHook& hook) noexcept {
    assert(!hook.linked() && "an element linked into a second list through one hook");
    hook.next_ = &at;
    hook.prev_ = at.prev_;
    at.prev_->next_ = &hook;
    at.prev_ = &hook;
  }
  static T& owner(const ListHook* hook) noexcept {
    const auto offset = std::bit_cast<std::ptrdiff_t>(Hook);
    return *reinterpret_cast<T*>(reinterpret_cast<std::byte*>(const_cast<ListHook*>(hook)) -
                                 offset);
  }

  ListHook root_;
};

}  // namespace coring

// IntrusiveList: order, O(1) unlink from anywhere, linked(), splicing, and walks that
// unlink as they go.
#include "coring/runtime/intrusive_list.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <new>
#include <vector>

namespace {

struct Item {
  explicit Item(int v) : value(v) {}
  int value;
  coring::ListHook first;
  coring::ListHook second;
};

using FirstList = coring::IntrusiveList<Item, &Item::first>;
using SecondList = coring::IntrusiveList<Item, &Item::second>;

std::vector<int> values(const FirstList& list) {
  std::vector<int> out;
  for (Item* item = list.first(); item != nullptr; item = list.next(*item)) {
    out.push_back(item->value);
  }
  return out;
}

TEST(IntrusiveList, KeepsOrderAtBothEnds) {
  Item a(1), b(2), c(3);
  FirstList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.first(), nullptr);
  list.push_back(b);
  list.push_back(c);
  list.push_front(a);
  EXPECT_EQ(values(list), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(&list.front(), &a);
  EXPECT_EQ(&list.back(), &c);
  EXPECT_EQ(&list.pop_front(), &a);
  EXPECT_FALSE(FirstList::linked(a));
  EXPECT_EQ(&list.pop_front(), &b);
  EXPECT_EQ(&list.pop_front(), &c);
  EXPECT_TRUE(list.empty());
}

TEST(IntrusiveList, UnlinksFromAnyPlaceWithoutTheList) {
  Item a(1), b(2), c(3), d(4);
  FirstList list;
  for (Item* item : {&a, &b, &c, &d}) list.push_back(*item);
  FirstList::unlink(b);  // middle
  EXPECT_FALSE(FirstList::linked(b));
  EXPECT_EQ(values(list), (std::vector<int>{1, 3, 4}));
  FirstList::unlink(d);  // back
  EXPECT_EQ(values(list), (std::vector<int>{1, 3}));
  EXPECT_EQ(&list.back(), &c);
  FirstList::unlink(a);  // front
  EXPECT_EQ(values(list), (std::vector<int>{3}));
  FirstList::unlink(c);
  EXPECT_TRUE(list.empty());
  // An unlinked element goes back in, at the end.
  list.push_back(b);
  list.push_back(a);
  EXPECT_EQ(values(list), (std::vector<int>{2, 1}));
  list.pop_front();
  list.pop_front();
}

TEST(IntrusiveList, OneElementInTwoListsThroughTwoHooks) {
  Item a(1), b(2);
  FirstList firsts;
  SecondList seconds;
  firsts.push_back(a);
  firsts.push_back(b);
  seconds.push_back(b);
  seconds.push_back(a);
  EXPECT_EQ(&seconds.front(), &b);
  FirstList::unlink(b);
  EXPECT_TRUE(SecondList::linked(b));
  EXPECT_EQ(&seconds.front(), &b);
  EXPECT_EQ(values(firsts), (std::vector<int>{1}));
  SecondList::unlink(a);
  SecondList::unlink(b);
  FirstList::unlink(a);
  EXPECT_TRUE(firsts.empty());
  EXPECT_TRUE(seconds.empty());
}

TEST(IntrusiveList, SpliceMovesEveryElementInOrder) {
  Item a(1), b(2), c(3), d(4);
  FirstList to;
  FirstList from;
  to.splice_back(from);  // both empty
  EXPECT_TRUE(to.empty());
  from.push_back(c);
  from.push_back(d);
  to.splice_back(from);  // into an empty list
  EXPECT_TRUE(from.empty());
  EXPECT_EQ(values(to), (std::vector<int>{3, 4}));
  from.push_back(a);
  from.push_back(b);
  to.splice_back(from);  // behind what is there
  EXPECT_TRUE(from.empty());
  EXPECT_EQ(values(to), (std::vector<int>{3, 4, 1, 2}));
  // The moved elements unlink from their new list.
  FirstList::unlink(d);
  FirstList::unlink(b);
  EXPECT_EQ(values(to), (std::vector<int>{3, 1}));
  EXPECT_EQ(&to.back(), &a);
  while (!to.empty()) to.pop_front();
}

TEST(IntrusiveList, AWalkMayUnlinkTheElementItStandsOn) {
  std::vector<Item> items;
  items.reserve(6);
  for (int i = 0; i < 6; ++i) items.emplace_back(i);
  FirstList list;
  for (Item& item : items) list.push_back(item);
  for (Item* item = list.first(); item != nullptr;) {
    Item* next = list.next(*item);
    if (item->value % 2 == 0) FirstList::unlink(*item);
    item = next;
  }
  EXPECT_EQ(values(list), (std::vector<int>{1, 3, 5}));
  while (!list.empty()) list.pop_front();
}

TEST(IntrusiveList, ACopiedHookStartsUnlinked) {
  Item a(1);
  FirstList list;
  list.push_back(a);
  const Item copy = a;
  EXPECT_TRUE(FirstList::linked(a));
  EXPECT_FALSE(FirstList::linked(copy));
  list.pop_front();
}

// A hook built Unset (an Operation's) is unlinked in every build, whatever its memory
// held before: a program built without NDEBUG may run the asserting destructor on a hook
// a library built with NDEBUG constructed.
TEST(IntrusiveList, AnUnsetHookIsUnlinkedWhateverItsMemoryHeld) {
  alignas(coring::ListHook) unsigned char storage[sizeof(coring::ListHook)];
  std::memset(storage, 0xA5, sizeof(storage));
  auto* hook = new (storage) coring::ListHook(coring::ListHook::Unset{});
  EXPECT_FALSE(hook->linked());
  hook->~ListHook();
}

}  // namespace
